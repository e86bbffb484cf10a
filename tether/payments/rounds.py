"""How long a worker job (sender, receipts consumer, status publisher) pauses after a round.

A job's cost follows its rounds a second, not its messages: a pause after a partial round lets
what comes meanwhile join the next round. But a message that waits behind its case (the case's
order is out) is sent only once that order's receipt is booked, so every stage's pause is in
its case's cycle. Hence two pauses: ``round_linger_s`` (short) while messages wait behind
cases, ``round_idle_linger_s`` (longer) when none does. What waits is known from the receipt
batches: one that planned waiting messages says cases queue, for ``QUEUEING_MEMORY_S``
(``Queueing``, one a process: ``PaymentsService.queueing``). Remembered, not the last batch's
word: with a few hot cases among many quiet ones, most receipt batches hold only quiet
receipts, and each such batch switched the hot cases' cycle to the long pauses (10,000 messages
at 1,000/s, every tenth to one of 2 cases: 639 against 746 msg/s end to end before this change).

Latency: each stage adds at most one pause to a message (a stage idle when it comes takes it as
before). Against the 0.01 s of before, a lone message's ``OK`` is stored at most 2 x 0.04 s later
(sender, receipts) and published at most 3 x 0.04 = 0.12 s later, at the default 0.05 s. For
that, at 300 msg/s the workers' CPU a message fell by about half (bench/RESULTS.md); a longer
pause saves less and less (0.08 s: a further fifth of the workers' CPU, for 60 % more wait).
"""

from __future__ import annotations

import time

from tether.payments.settings import PaymentsSettings

# a hot case releases its next message every cycle (20-45 ms on 2 cores): half a second without
# any release means nothing waits
QUEUEING_MEMORY_S = 0.5


class Queueing:
    """Whether messages wait behind their cases: a receipt batch released (planned) some within
    the last ``QUEUEING_MEMORY_S``. One per process, read by each of its worker jobs."""

    def __init__(self) -> None:
        self.released_at = float("-inf")

    def released(self) -> None:
        self.released_at = time.monotonic()

    def now(self) -> bool:
        return time.monotonic() - self.released_at < QUEUEING_MEMORY_S


def after_round(s: PaymentsSettings, *, taken: int, batch: int, queueing: bool) -> float:
    """Seconds to pause after a round that took ``taken`` of at most ``batch``: none after a
    full round (more is due), short while cases queue, longer otherwise."""
    if taken >= batch:
        return 0.0
    return s.round_linger_s if queueing else s.round_idle_linger_s


def after_send(s: PaymentsSettings, *, orders: int, handed: int, queueing: bool) -> float:
    """The sender's pause: none after a round with handed orders (a receipt batch planned them
    from messages that waited behind their cases: the next of those come soon)."""
    if handed:
        return 0.0
    return after_round(s, taken=orders, batch=s.send_batch, queueing=queueing)


def after_receipts(s: PaymentsSettings, *, fetched: int, queueing: bool) -> float:
    """The receipts consumer's pause; ``queueing`` as its own batch just left it."""
    return after_round(s, taken=fetched, batch=s.fetch_batch, queueing=queueing)


def after_statuses(s: PaymentsSettings, *, published: int, batch: int, queueing: bool) -> float:
    """The status publisher's pause, before it waits for the next status stored."""
    return after_round(s, taken=published, batch=batch, queueing=queueing)
