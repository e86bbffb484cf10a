"""The operator console at / and the gauges on /metrics, against arranged database state."""

from __future__ import annotations

import re

from .conftest import Site

LOOKUP = "/api/v1/controllable-unit/lookup"


def _row(html: str, label: str, panel: str | None = None) -> str:
    """The value cell of a panel row (the first one with that label, or the one in ``panel``)."""
    if panel is not None:
        start = html.index(f'aria-label="{panel}"')
        html = html[start : html.index("</section>", start)]
    found = re.search(
        rf'<tr data-label="{re.escape(label)}">.*?<td class="value">(.*?)</td>\s*'
        r'<td><span class="status (\w+)">',
        html,
        re.S,
    )
    assert found, f"no row {label!r}"
    return f"{found.group(1)} {found.group(2)}"


def test_console_shows_every_capability_panel_with_its_counts(site: Site) -> None:
    page = site.client.get("/", headers={"accept": "text/html"})
    assert page.status_code == 200
    html = page.text
    assert 'aria-label="Accounting points"' in html and 'aria-label="E-licensing"' in html
    assert _row(html, "kept in sync") == "6 ok"
    assert _row(html, "synced") == "2 warn"
    assert _row(html, "failing") == "2 bad"
    assert _row(html, "never synced") == "2 warn"
    assert _row(html, "due now") == "4 warn"  # 2 never synced + 2 failing, waiting 10 min
    assert _row(html, "oldest sync") == "2 h ago ok"
    for reason, gsrns in site.failing.items():  # failures grouped by reason, linked to the AP
        assert f"<td>{reason}</td><td>1</td>" in html
        assert f'<a href="/api/v1/accounting-points/{gsrns[0]}">{gsrns[0]}</a>' in html
    assert _row(html, "circuit", "Accounting points") == "closed ok"
    assert _row(html, "circuit", "E-licensing").startswith("open (next probe at ")
    assert _row(html, "circuit", "E-licensing").endswith(" bad")
    assert _row(html, "upstream", "E-licensing") == "elicensing bad"
    assert _row(html, "stale invoices") == "1 bad"
    assert _row(html, "obligations not read yet") == "1 ok"
    page_link = f"/compliance-report-versions/{site.versions[0]}/obligation"
    assert f'<a href="{page_link}">{site.stale_invoice}</a>' in html
    assert _row(html, "orders waiting for a receipt") == "1 ok"
    assert _row(html, "oldest order without a receipt") == "3 min old warn"
    assert '<a href="/payments/cases/sak-7">sak-7</a>' in html
    assert _row(html, "latest run (2026-10-31)") == "running, 1/2 chunks warn"
    assert _row(html, "accounts that failed") == "1 warn"
    assert '<a href="/accruals/runs/2026-10-31">2026-10-31</a>' in html
    assert '<script src="/static/htmx.min.js"></script>' in html
    assert 'hx-get="/console/panels"' in html


def test_the_refresh_fragment_follows_the_database(site: Site) -> None:
    before = site.client.get("/console/panels").text
    assert "<html" not in before  # a fragment, swapped into the page by htmx
    assert _row(before, "failing") == "2 bad"
    import psycopg

    with psycopg.connect(site.db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE ap.accounting_point_sync SET last_error = NULL, last_error_reason = NULL, "
            "last_synced_at = now(), next_sync_at = now() + interval '1 hour'"
        )
    after = site.client.get("/console/panels").text
    assert _row(after, "failing") == "0 ok"
    assert _row(after, "synced") == "6 ok"
    assert "No failing syncs." in after


def test_htmx_is_served_from_the_package(site: Site) -> None:
    script = site.client.get("/static/htmx.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert b"htmx" in script.content and len(script.content) > 40_000


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    head = f"{name}{{{wanted}}}" if labels else name
    found = re.search(rf"^{re.escape(head)} (\S+)$", text, re.M)
    assert found, f"no sample {head}"
    return float(found.group(1))


def test_metrics_carry_the_gauges_operators_alert_on(site: Site) -> None:
    text = site.client.get("/metrics").text
    assert _sample(text, "tether_ap_sync_backlog") == 4
    assert 590 <= _sample(text, "tether_ap_sync_lag_seconds") < 3600
    assert _sample(text, "tether_ap_oldest_sync_age_seconds") >= 7200
    assert _sample(text, "tether_ap_syncs", state="failing") == 2
    assert _sample(text, "tether_ap_syncs", state="never_synced") == 2
    for reason in site.failing:
        assert _sample(text, "tether_ap_sync_failing", reason=reason) == 1
    assert _sample(text, "tether_circuit_state", upstream="elicensing", state="open") == 1
    assert _sample(text, "tether_circuit_state", upstream="elicensing", state="closed") == 0
    assert _sample(text, "tether_circuit_open", upstream="elicensing") == 1
    assert _sample(text, "tether_circuit_open", upstream="accounting_point_adapter") == 0
    assert (
        _sample(text, "tether_circuit_state", upstream="accounting_point_adapter", state="closed")
        == 1
    )
    assert _sample(text, "tether_elicensing_stale_invoices") == 1
    assert _sample(text, "tether_payments_orders_waiting") == 1
    assert _sample(text, "tether_payments_oldest_waiting_seconds") >= 180
    assert _sample(text, "tether_accruals_run_chunks", period_end="2026-10-31", state="done") == 1
    assert "# TYPE tether_ap_sync_backlog gauge" in text
    assert "_created" not in text  # no duplicate series


def test_the_datahub_circuit_shows_on_the_console_and_in_metrics(site: Site) -> None:
    """Lookups with the datahub down open its circuit: the accounting points panel and
    ``tether_circuit_open{upstream="accounting_point_adapter"}`` say so, as for e-licensing."""
    site.datahub_server.set_mode("down")
    ask = {"end_user": "123456789", "accounting_point": site.datahub.gsrns[6]}
    answers = [site.client.post(LOOKUP, json=ask) for _ in range(4)]
    assert [a.status_code for a in answers] == [503] * 4
    assert answers[-1].json()["reason"] == "circuit_open"  # the threshold (3) was reached
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 3600  # when the circuit lets one by
    assert "retry-after" not in answers[0].headers  # a plain failure: no time is known
    html = site.client.get("/").text
    assert _row(html, "circuit", "Accounting points").startswith("open (next probe at ")
    assert _row(html, "circuit", "Accounting points").endswith(" bad")
    assert _row(html, "consecutive failures", "Accounting points") == "3 warn"
    upstream = _row(html, "upstream", "Accounting points")
    assert upstream == f"accounting_point_adapter {site.datahub_server.url} bad"
    assert " ago) bad" in _row(html, "circuit open since", "Accounting points")
    assert "unavailable" in _row(html, "last failure", "Accounting points")
    text = site.client.get("/metrics").text
    assert _sample(text, "tether_circuit_open", upstream="accounting_point_adapter") == 1
    assert (
        _sample(text, "tether_circuit_state", upstream="accounting_point_adapter", state="open")
        == 1
    )
    assert _sample(text, "tether_circuit_open", upstream="elicensing") == 1  # still there


def test_a_panel_that_fails_shows_why_and_the_others_stay(site: Site) -> None:
    import psycopg

    with psycopg.connect(site.db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE ap.accounting_point_sync RENAME TO accounting_point_sync_x")
    try:
        html = site.client.get("/").text
        assert "panel unavailable" in html
        assert 'aria-label="E-licensing"' in html and _row(html, "stale invoices") == "1 bad"
        text = site.client.get("/metrics").text
        assert _sample(text, "tether_elicensing_stale_invoices") == 1
    finally:
        with psycopg.connect(site.db_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE ap.accounting_point_sync_x RENAME TO accounting_point_sync")


async def test_the_panel_cache_shares_one_read_between_callers(pool: object) -> None:
    import asyncio

    from tether.core.bootstrap import Runtime
    from tether.core.console import Panel, PanelCache, PanelProvider
    from tether.core.settings import Settings

    reads = 0

    async def panel(runtime: Runtime, service: object) -> Panel:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0)
        return Panel(title=f"read {reads}")

    runtime = Runtime(settings=Settings(), database_url="unused", pool=pool)  # type: ignore[arg-type]
    providers = [PanelProvider(name="counting", panel=panel, service=None)]
    shared = PanelCache(max_age_s=3600)
    answers = await asyncio.gather(*(shared.get(runtime, providers) for _ in range(5)))
    assert reads == 1 and {a[0].title for a in answers} == {"read 1"}
    fresh = PanelCache(max_age_s=0)
    await fresh.get(runtime, providers)
    await fresh.get(runtime, providers)
    assert reads == 3


def test_the_service_panel_counts_live_workers(site: Site) -> None:
    """No worker running was invisible: the Service panel (first) and ``tether_workers_alive``
    count the worker processes whose heartbeat is recent, red at zero."""
    import psycopg

    html = site.client.get("/").text
    assert html.index('aria-label="Service"') < html.index('aria-label="Accounting points"')
    assert _row(html, "database", "Service") == "up ok"
    assert _row(html, "workers", "Service") == "0 alive bad"
    assert "No worker process has beaten" in html
    text = site.client.get("/metrics").text
    assert _sample(text, "tether_workers_alive") == 0 and _sample(text, "tether_database_up") == 1
    with psycopg.connect(site.db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tether.worker_process VALUES"
            " ('w1:11', 'w1', 11, 'prompt', '{a.sync,a.events}', now() - interval '2 hours',"
            "  now()), ('w2:22', 'w2', 22, 'all', '{a.sync}', now() - interval '3 hours',"
            "  now() - interval '5 minutes')"
        )
    try:
        html = site.client.get("/console/panels").text
        assert _row(html, "workers", "Service") == "1 alive ok"
        assert _row(html, "workers gone silent", "Service") == "1 (last beat 5 min ago) warn"
        assert "<td>w1:11</td><td>prompt</td><td>2 h</td><td>0 s ago</td>" in html
        assert "<td>5 min ago (dead)</td><td>a.sync</td>" in html
        assert _sample(site.client.get("/metrics").text, "tether_workers_alive") == 1
    finally:
        with psycopg.connect(site.db_url, autocommit=True) as conn:
            conn.execute("DELETE FROM tether.worker_process")
