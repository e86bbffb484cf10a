"""The pause of each worker job after a round (``rounds``): none after a full round (nor after
a sender round with handed orders), the short ``round_linger_s`` while messages wait behind
their cases (their cycle goes through every stage's pause), the longer ``round_idle_linger_s``
when none does; and the signal, ``PaymentsService.queueing``, set by each receipt batch."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from tether.payments import codec, rounds
from tether.payments.oppdrag import build_receipt_xml
from tether.payments.service import PaymentsService
from tether.payments.settings import PaymentsSettings
from tether.payments.statuses import STATUS_BATCH

from .conftest import june, message

S = PaymentsSettings(round_linger_s=0.01, round_idle_linger_s=0.04, send_batch=50, fetch_batch=100)
SHORT, LONG = 0.01, 0.04


def test_the_sender_pauses_long_only_when_nothing_waits_behind_its_cases() -> None:
    assert rounds.after_send(S, orders=3, handed=0, queueing=False) == LONG
    assert rounds.after_send(S, orders=3, handed=0, queueing=True) == SHORT
    assert rounds.after_send(S, orders=3, handed=2, queueing=False) == 0.0  # a receipt's group
    assert rounds.after_send(S, orders=3, handed=2, queueing=True) == 0.0
    assert rounds.after_send(S, orders=50, handed=0, queueing=False) == 0.0  # full: more is due


def test_the_receipts_consumer_pauses_short_after_a_batch_that_released_messages() -> None:
    assert rounds.after_receipts(S, fetched=7, queueing=False) == LONG
    assert rounds.after_receipts(S, fetched=7, queueing=True) == SHORT
    assert rounds.after_receipts(S, fetched=100, queueing=False) == 0.0


def test_the_status_publisher_pauses_short_while_cases_queue() -> None:
    def pause(published: int, queueing: bool) -> float:
        return rounds.after_statuses(S, published=published, batch=STATUS_BATCH, queueing=queueing)

    assert pause(1, False) == LONG
    assert pause(1, True) == SHORT
    assert pause(STATUS_BATCH, False) == 0.0


def test_the_defaults_pause_longer_when_nothing_waits() -> None:
    s = PaymentsSettings()
    assert s.round_idle_linger_s > s.round_linger_s > 0


def _receipt(xml: str) -> tuple[codec.Receipt, str]:
    raw = build_receipt_xml(xml, "00")
    return codec.read_receipt(raw), raw


async def test_a_receipt_batch_says_whether_it_released_waiting_messages(
    service: PaymentsService, pool: AsyncConnectionPool[Any]
) -> None:
    """The first receipt frees a case with a message waiting behind it (planned now: cases
    queue); the second frees it with none waiting, which leaves the signal on for the memory's
    length (a quiet batch between a hot case's receipts must not end its short pauses)."""
    assert service.queueing.now() is False
    await service.submit("sakQ-1", message(june(3, 7), sak="sakQ"))
    await service.submit("sakQ-2", message(june(3, 14), sak="sakQ", behandling="b2"))
    (first,) = await service.orders("sakQ")
    await service.apply_receipts([_receipt(first.xml)])
    assert service.queueing.now() is True
    released_at = service.queueing.released_at
    second = next(o for o in await service.orders("sakQ") if o.id != first.id)
    await service.apply_receipts([_receipt(second.xml)])
    assert service.queueing.released_at == released_at  # neither renewed nor cleared


def test_the_queueing_signal_is_remembered_for_its_memory_then_ends() -> None:
    signal = rounds.Queueing()
    assert signal.now() is False  # nothing released yet
    signal.released()
    assert signal.now() is True
    signal.released_at -= rounds.QUEUEING_MEMORY_S  # as if that much time had passed
    assert signal.now() is False
