"""The metered floor (`bench.run --floor`): the bare proxy plus the least that any gateway which bills each
request exactly must do — read the body as JSON, find the caller (a dict of key digests), hold the worst
case in Redis (one script, awaited before the upstream call), ask the upstream for a whole answer, read it
as JSON, answer in the client's format, and settle in Redis (one lazy script, after the answer), on the
gateway's own Redis connection (gateway/metering/resp.py). No validation, translation, routing, journal,
metrics or PostgreSQL writer: the gateway does all of those on top. The table then measures the gateway
against this floor instead of the bare proxy: what the features cost beyond metering itself.

    BENCH_UPSTREAM_URL=… BENCH_UPSTREAM_KEY=… BENCH_FLOOR_REDIS=redis://…/3 \\
    uvicorn bench.metered_floor:app --workers 2 --loop uvloop --http httptools --no-access-log
"""

import hashlib
import os
import time
import uuid
from typing import Any

import django
import orjson

from bench.bare_proxy import BareProxy, read_body

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()  # the gateway package's import needs settings; the floor uses none of them

from gateway.metering.resp import RespConnection  # noqa: E402

# The hold: the balance (created large on first use) less what is held must cover the worst case.
RESERVE = """
local bal = redis.call('HGET', KEYS[1], 'bal')
if not bal then
  bal = 1000000000000000
  redis.call('HSET', KEYS[1], 'bal', bal)
else
  bal = tonumber(bal)
end
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
if bal - held < tonumber(ARGV[1]) then return 'no' end
redis.call('HINCRBY', KEYS[1], 'held', ARGV[1])
redis.call('HSET', KEYS[2], 'amt', ARGV[1])
return 'ok'
"""
# The settlement: the hold released, the cost debited, the record queued (a bounded list: nobody drains it).
SETTLE = """
local amt = tonumber(redis.call('HGET', KEYS[2], 'amt') or '0')
redis.call('HINCRBY', KEYS[1], 'held', -amt)
redis.call('HINCRBY', KEYS[1], 'bal', -tonumber(ARGV[1]))
redis.call('DEL', KEYS[2])
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('LTRIM', KEYS[3], -1000, -1)
return 1
"""


class MeteredFloor(BareProxy):
    """The bare proxy's server, session and request, with the hold and the settlement around each answer."""

    def __init__(self) -> None:
        super().__init__()
        self.keys = {hashlib.sha256(b"-").hexdigest(): "ws-bench"}  # the bench sends "Bearer -"
        self.redis = RespConnection(os.environ["BENCH_FLOOR_REDIS"])
        self.reserve_sha = self.settle_sha = ""

    async def started(self) -> None:
        self.reserve_sha = (await self.redis.call(("SCRIPT", "LOAD", RESERVE))).decode()
        self.settle_sha = (await self.redis.call(("SCRIPT", "LOAD", SETTLE))).decode()

    async def forward(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        request = orjson.loads(body)
        headers = dict(scope["headers"])
        secret = headers.get(b"authorization", b"").removeprefix(b"Bearer ")
        workspace = self.keys[hashlib.sha256(secret).hexdigest()]
        request_id = uuid.uuid4().hex
        # As the gateway names a workspace's keys (one hash tag: one cluster slot), under a prefix of its own.
        ws_key, hold_key = f"fl:{{{workspace}}}:ws", f"fl:{{{workspace}}}:hold:{request_id}"
        worst = 10 * (len(body) + 4 * (request.get("max_tokens") or 1000))
        verdict = await self.redis.call(("EVALSHA", self.reserve_sha, 2, ws_key, hold_key, worst))
        if verdict != b"ok":
            raise RuntimeError(f"the floor's balance refused a hold: {verdict!r}")
        assert self.session is not None, "the lifespan starts the session"
        async with self.session.post(
            self.url, data=orjson.dumps({**request, "stream": False}), headers=self.headers
        ) as upstream:
            answer = orjson.loads(await upstream.read())
        usage = answer["usage"]
        cost = usage["prompt_tokens"] + 10 * usage["completion_tokens"]
        out = orjson.dumps(
            {
                "id": f"gen-{request_id}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request["model"],
                "choices": answer["choices"],
                "usage": usage,
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))],
            }
        )
        await send({"type": "http.response.body", "body": out})
        record = orjson.dumps({"ws": workspace, "request_id": request_id, "cost": cost, "usage": usage})
        await self.redis.call(
            ("EVALSHA", self.settle_sha, 3, ws_key, hold_key, f"fl:{{{workspace}}}:q", cost, record),
            lazy=True,
        )


app = MeteredFloor()
