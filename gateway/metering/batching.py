"""Script calls made in the same event-loop turn, sent to Redis in one write on one connection.

On this stack a write to a loopback socket costs more than the script it carries (bench/README.md: the
Redis client's socket writes were ~18 % of a gateway worker's CPU, two per request), and so does a redis-py
pipeline (~90 µs each, whatever it holds). Requests in flight together admit and settle at the same
moments, so the calls of one turn of the loop share one write and one read on the loop's connection
(gateway/metering/resp.py). Each call still runs its own script atomically; only the transport is shared.
A lone call costs what it did before: it goes out at the end of the turn it was made in.
"""

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from gateway.metering.resp import RespConnection

Key = str | bytes
Arg = str | int | bytes


class ScriptBatcher:
    """One Lua script, called by many coroutines over one pipelined connection. The script runs by SHA and
    is loaded when Redis does not know it (after a restart or SCRIPT FLUSH): a call answered NOSCRIPT did
    not run, so it is sent again once the script is loaded, and runs exactly once."""

    def __init__(self, connection: RespConnection, source: str, *, lazy: bool = False) -> None:
        self.connection = connection
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self.lazy = lazy  # its calls may wait a moment to share the next prompt call's write (resp.py)

    async def __call__(self, *, keys: Sequence[Key], args: Sequence[Arg]) -> Any:
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return await self.connection.call(command, lazy=self.lazy)
        except NoScriptError:
            await self.connection.call(("SCRIPT", "LOAD", self.source), lazy=self.lazy)
            return await self.connection.call(command, lazy=self.lazy)
