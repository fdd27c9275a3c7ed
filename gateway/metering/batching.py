"""Script calls made in the same event-loop turn, sent to Redis as one pipelined round trip.

On this stack a write to a loopback socket costs more than the script it carries (bench/README.md: the
Redis client's socket writes were ~18 % of a gateway worker's CPU, two per request). Requests in flight
together admit and settle at the same moments, so the calls of one turn of the loop share one write and
one read. Each call still runs its own script atomically; only the transport is shared. A lone call costs
what it did before: it goes out at the end of the turn it was made in.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

Key = str | bytes
Arg = str | int | bytes


class ScriptBatcher:
    """One Lua script, called by many coroutines, sent in batches. The script is run by SHA and loaded once
    when Redis does not know it (after a restart or SCRIPT FLUSH), like redis-py's own Script objects."""

    def __init__(self, client: aioredis.Redis, source: str) -> None:
        self.client = client
        self.script = client.register_script(source)  # computes the SHA; loads the script when needed
        self.pending: list[tuple[Sequence[Key], Sequence[Arg], asyncio.Future[Any]]] = []
        self.sending: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def __call__(self, *, keys: Sequence[Key], args: Sequence[Arg]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self.pending:
            loop.call_soon(self._flush)  # after the other callbacks of this turn have added theirs
        self.pending.append((keys, args, future))
        return await future

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        task = asyncio.ensure_future(self._run(batch))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def _run(self, batch: list[tuple[Sequence[Key], Sequence[Arg], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._send(batch)
        except BaseException as exc:  # the connection failed: every call of the batch fails with it
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled; the script ran all the same
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _send(self, batch: list[tuple[Sequence[Key], Sequence[Arg], asyncio.Future[Any]]]) -> list[Any]:
        if len(batch) == 1:
            keys, args, _ = batch[0]
            try:
                return [await self.script(keys=keys, args=args)]
            except aioredis.ResponseError as exc:
                return [exc]
        results = await self._pipelined(batch)
        unrun = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if unrun:
            # Redis forgot the script: a call answered NOSCRIPT did not run; load it, send those again.
            await self.client.script_load(self.script.script)
            for i, result in zip(unrun, await self._pipelined([batch[i] for i in unrun]), strict=True):
                results[i] = result
        return results

    async def _pipelined(
        self, batch: list[tuple[Sequence[Key], Sequence[Arg], asyncio.Future[Any]]]
    ) -> list[Any]:
        sha = self.script.sha
        async with self.client.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.evalsha(sha, len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)
