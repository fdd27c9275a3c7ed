"""Metering: reserve before the upstream call, settle and record after it (design §4).

Two meters behind one interface (`Meter`): `sql` reserves and settles in the database, one transaction
each (the embedded default); `redis` does both with one atomic Redis script each and writes PostgreSQL in
batches (production, ADR 0006). `settings.GATEWAY_METER` chooses.
"""

from core.hot_settings import hot
from gateway.metering.base import Meter, Outcome, Settlement, cost_of
from gateway.metering.redis_meter import RedisMeter
from gateway.metering.sql import SqlMeter

__all__ = ["Meter", "Outcome", "Settlement", "cost_of", "get_meter"]

_METERS: dict[str, Meter] = {"sql": SqlMeter(), "redis": RedisMeter()}


def get_meter() -> Meter:
    return _METERS[hot.GATEWAY_METER]
