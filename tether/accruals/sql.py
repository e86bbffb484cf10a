"""The named queries of the accruals capability (``queries.sql``), loaded once."""

from __future__ import annotations

from tether.core.sql import load_queries

Q = load_queries("tether.accruals")
