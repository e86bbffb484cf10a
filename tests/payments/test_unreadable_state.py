"""A case whose stored state does not read (a bug, a hand-edited row): each message planned
against it is FEILET 500 under its key, the spec's "any other processing error", and the other
messages and cases go on. Before, the error failed the whole intake or receipt batch, and the
broker delivered it again for ever."""

from __future__ import annotations

from tether.payments.domain import uid_for

from .conftest import Harness, june, message
from .test_simulator import control


async def corrupt(harness: Harness, sak: str, meldeperiode: str) -> None:
    """One confirmed utbetaling of the case made unreadable."""
    uid = uid_for("DAGPENGER", sak, meldeperiode, "DAGPENGER")
    async with harness.service.pool.connection() as conn:
        done = await conn.execute("UPDATE pay.utbetaling SET data = '{}' WHERE uid = %s", (uid,))
        assert done.rowcount == 1


async def test_a_message_on_a_case_whose_state_does_not_read_is_feilet_500(
    harness: Harness,
) -> None:
    await harness.send("k1", message(june(3, 14)))
    await corrupt(harness, "sak1", "m1")
    s = await harness.send("k2", message(june(3, 14, 200)))
    assert s.status == "FEILET" and s.body["error"]["statusCode"] == 500
    assert "does not read" in s.body["error"]["msg"]
    other = await harness.send("k3", message(june(3, 14), sak="sak2"))
    assert other.status == "OK"
    assert len(await harness.service.orders("sak1")) == 1  # nothing sent for k2


async def test_a_waiting_message_planned_against_an_unreadable_state_is_feilet_500(
    harness: Harness,
) -> None:
    """The receipt of the case's order in flight is booked (its OK), and the message that waited
    behind it, planned by the same batch, is FEILET 500: the batch is not failed and retried."""
    await harness.send("k1", message(june(3, 7)))
    await control(harness.sim, "slow", slow_ms=1500)
    both = june(3, 7) + june(10, 14, periode="m2")
    await harness.service.submit("k2", message(both))  # adds m2: in flight for 1.5 s
    await harness.service.submit("k3", message(june(3, 7) + june(10, 14, 300, periode="m2")))
    assert (await harness.service.latest_status("k3")).status == "VENTER"
    await corrupt(harness, "sak1", "m1")  # the row k2's receipt leaves alone
    k2 = await harness.service.wait_status("k2", 20)
    k3 = await harness.service.wait_status("k3", 20)
    assert k2.status == "OK"
    assert k3.status == "FEILET" and k3.body["error"]["statusCode"] == 500
