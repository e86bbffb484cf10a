"""Every step of the demo's printed guide works when pasted as printed, and the demo tells its
story in compact INFO lines (syncs done, events received)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

HTML = {"accept": "text/html"}


def _command(line: str) -> tuple[dict[str, str], list[str]]:
    """A printed shell line: the variables it sets first, then the command's words."""
    words = line.split()
    extra = {}
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        name, _, value = words.pop(0).partition("=")
        extra[name] = value
    return extra, words


def _read_guide(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "Ctrl-C stops everything." in line:
            return lines
    raise AssertionError("the demo printed no guide:\n" + "\n".join(lines))


def _step(guide: list[str], label: str) -> str:
    """The command printed on the line after ``label``."""
    return guide[guide.index(label) + 1]


def _paste(line: str) -> int:
    """Run a printed command as pasted into a shell; return the HTTP status curl saw."""
    done = subprocess.run(
        ["bash", "-c", line.strip() + " -s -o /dev/null -w '%{http_code}'"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, (line, done.stderr)
    return int(done.stdout)


def _alerts(url: str, key: str) -> int:
    page = httpx.get(url, headers={**HTML, "authorization": f"Bearer {key}"}, timeout=15)
    assert page.status_code == 200, page.text
    return page.text.count('role="alert"')


@pytest.mark.xdist_group("tether_demo")  # one database (tether_demo), the same simulator ports
@pytest.mark.timeout(400)
def test_every_guide_step_works_as_printed(server_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": server_url,
        "TETHER_LOG_LEVEL": "INFO",
        "TETHER_AP_DEMO_ACCOUNTING_POINTS": "30",
        "TETHER_AP_DEMO_CONTROLLABLE_UNITS": "8",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "demo", "--port", "0", "--duration", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        guide = _read_guide(proc)
        text = "\n".join(guide)
        assert not re.search(r"<(number|gsrn|id|end user id)>", text), text
        console = re.search(r"^Console\s+(http://\S+)/ ", text, re.M)
        assert console, text
        api = console.group(1)
        key_line = re.search(r"^Admin API key\s+(\S+)", text, re.M)
        assert key_line, text
        key = key_line.group(1)
        auth = {"authorization": f"Bearer {key}"}
        assert re.search(r"^Database\s+.*tether_demo", text, re.M), text
        page = httpx.get(api + "/", headers={**HTML, **auth}, timeout=15)
        assert page.status_code == 200 and 'aria-label="Accounting points"' in page.text

        commands = [line for line in guide if line.strip().startswith("curl ")]
        assert len(commands) >= 9
        for line in commands:
            if "/faults" in line or "/ledger/" in line or "payments/dagpenger" in line:
                continue  # the fault and payment steps are checked below, in their order
            assert 200 <= _paste(line) < 300, line

        # e-licensing: down, stale alert; back, circuit closes after the printed wait; payment
        obligation = re.search(r"open (http://\S+/obligation\?force=true)", text)
        assert obligation, text
        page_url = obligation.group(1)
        down = _step(guide, "  take e-licensing down:")
        none = _step(guide, "  bring it back:")
        assert _alerts(page_url, key) == 0
        without_token = re.sub(r"-H 'authorization: Bearer [^']+' ", "", down)
        assert without_token != down and _paste(without_token) == 401  # the control port's
        assert 200 <= _paste(down) < 300
        assert _alerts(page_url, key) == 1
        wait = re.search(r"the circuit stays open (\d+) s", text)
        assert wait, text
        assert 200 <= _paste(none) < 300
        time.sleep(int(wait.group(1)) + 1)  # what the guide says to do
        assert _alerts(page_url, key) == 0
        intake = next(c for c in commands if "payments/dagpenger" in c)
        assert _paste(intake) == 202  # a dagpenger message accepted over HTTP, as printed
        database = re.search(r"export DATABASE_URL='([^']+)'", text)  # printed with DATABASE_URL
        assert database, text
        sends = [_command(g) for g in guide if "tether payments send" in g]
        assert len(sends) == 2 and any("--dry-run" in argv for _, argv in sends), guide
        for extra, argv in sends:  # as printed, with the variables the line sets
            sent = subprocess.run(
                [sys.executable, "-m", *argv],
                capture_output=True,
                text=True,
                timeout=60,
                env={**env, "DATABASE_URL": database.group(1), **extra},
            )
            assert sent.returncode == 0 and " OK" in sent.stdout, (argv, sent.stdout, sent.stderr)
        payment = next(c for c in commands if "/ledger/" in c)
        before = httpx.get(page_url, headers={**HTML, **auth}, timeout=15).text.count("<tr>")
        assert 200 <= _paste(payment) < 300
        after = httpx.get(page_url, headers={**HTML, **auth}, timeout=15).text
        assert after.count("<tr>") == before + 1 and "1,000.00" in after

        # accruals: the guide's re-run, from a shell without the demo's accruals settings
        rerun = next(g for g in guide if "tether accruals run --period-end" in g)
        argv = rerun[rerun.index("tether accruals run") :].split()
        files = re.search(r"files: (http://\S+)", text)
        assert files, text
        made = httpx.get(files.group(1), headers=auth, timeout=15)
        assert made.status_code == 200, made.text
        again = subprocess.run(
            [sys.executable, "-m", *argv],
            capture_output=True,
            text=True,
            timeout=180,
            env={**env, "DATABASE_URL": database.group(1)},
            cwd=tmp_path,  # it writes the files into ./accruals-exports/
        )
        assert again.returncode == 0, (argv, again.stdout, again.stderr)
        rerun_file = httpx.get(files.group(1), headers=auth, timeout=15)
        assert rerun_file.content == made.content  # the same bytes, as the guide says
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert re.search(r"INFO \S+ synced \d+ accounting point\(s\), \d+ failed", err), err[-3000:]
    assert re.search(r"INFO \S+ received change events: 1 accounting point\(s\) due now", err)
