"""Settings of the payments capability, read from ``TETHER_PAYMENTS_*`` variables.

Core settings keep the database, the API and the broker URL (``TETHER_NATS_URL``); everything
payments-specific (subjects, streams, durable consumers, timeouts) lives here.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tether.core.events import STREAM_MAX_AGE_S
from tether.core.setting_types import UpstreamUrl
from tether.core.settings import TetherSettings


class PaymentsSettings(TetherSettings):
    """Every knob of the payments capability; each maps to ``TETHER_PAYMENTS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TETHER_PAYMENTS_", frozen=True, extra="ignore")

    oppdrag_url: UpstreamUrl = Field(
        default="http://127.0.0.1:7003", description="The payment system's HTTP service."
    )
    oppdrag_token: SecretStr = Field(
        default=SecretStr("dev-oppdrag-token"),
        description="Bearer token of the payment system's HTTP service (a secret: set it).",
    )
    oppdrag_timeout_s: float = 5.0

    intake_stream: str = "PAYMENTS"
    intake_subject: str = "payments.dagpenger.v1"
    intake_durable: str = "tether-payments-intake"
    status_stream: str = "PAYMENTS_STATUS"
    status_subject: str = "payments.status.v1"
    orders_stream: str = "OPPDRAG_ORDERS"
    orders_subject: str = "oppdrag.orders.v1"
    receipts_stream: str = "OPPDRAG_RECEIPTS"
    receipts_subject: str = "oppdrag.receipts.v1"
    receipts_durable: str = "tether-payments-receipts"
    stream_max_age_s: float = Field(
        default=STREAM_MAX_AGE_S,
        ge=0,
        description="A stream tether creates keeps each message this long (0: for ever); "
        "streams that exist keep their own limits.",
    )

    max_order_bytes: int = Field(
        default=512 * 1024,
        ge=1,
        description="An order whose XML would be larger is refused at planning (FEILET 400): "
        "half of NATS's default 1 MiB max_payload, room for headers and a lower broker limit.",
    )
    send_batch: int = Field(default=50, description="Orders a worker claims per statement.")
    send_dead_timeout_s: float = Field(default=30, description="A claimed send is dead after.")
    send_retry_base_s: float = 1.0
    send_retry_max_s: float = 300.0
    receipt_timeout_s: float = Field(
        default=300, description="No receipt this long: ask the payment system about the order."
    )
    poll_interval_s: float = 0.2
    intake_batch: int = Field(
        default=100, description="Concurrent HTTP intakes stored in one transaction, at most."
    )
    intake_parallel: int = Field(
        default=1,
        ge=1,
        description="HTTP intake transactions of one API process at once (more: a lone request "
        "waits less, a crowd forms smaller batches and costs more CPU a message).",
    )
    intake_linger_s: float = Field(
        default=0.002,
        ge=0,
        le=0.05,
        description="An HTTP intake batch of fewer than intake_linger_below messages waits up to "
        "this long (from its oldest message) for more: fewer, larger batches (0: at once).",
    )
    intake_linger_below: int = Field(
        default=8, ge=0, description="An HTTP intake batch this large starts without lingering."
    )
    round_linger_s: float = Field(
        default=0.01,
        ge=0,
        description="Pause of a worker job after a partial round while messages wait behind "
        "their cases (each stage's pause is in their cycle: keep it short).",
    )
    round_idle_linger_s: float = Field(
        default=0.05,
        ge=0,
        description="Pause of a worker job after a partial round when no message waits behind "
        "a case: fewer, fuller rounds, for at most this much more latency a stage.",
    )
    fetch_batch: int = Field(default=100, description="Messages pulled per fetch.")
    receipt_concurrency: int = Field(default=16, description="Receipts booked at once per worker.")
    ack_wait_s: float = Field(
        default=30, description="A pulled message not acknowledged this long is redelivered."
    )
