"""The Lua scripts of the Redis meter, and of the provider slots that live in its Redis. Each one runs
atomically in Redis, so concurrent requests, writers and the reaper never see half a change. Names of the
hashes follow billing/mirror.py.

Every key a script is given is in one shard (its hash tag, one Redis Cluster slot; ADR 0017). A script
that names more keys itself (from a record, a hold, a batch token) puts them in the shard of its first
key (`SHARD` below), so they are in that slot too, as a cluster requires.

Negations are written `0 - x`: Lua's `-x` of a zero is "-0", which HINCRBY refuses as not an integer."""

# The shard prefix `hi:m:{s7}:` of the script's first key: everything up to the hash tag's closing brace.
_SHARD = """
local SHARD = string.match(KEYS[1], '^.-}:')
"""

# KEYS (one shard's): workspace hash, key hash, hold hash, holds zset, rate counter
# ARGV: amount, request id, key limit ('' = none), period, hold expiry, workspace id, key id ('' = none),
#       rpm ('' = none)
RESERVE = """
local ws, key, hold = KEYS[1], KEYS[2], KEYS[3]
local amount = tonumber(ARGV[1])
if redis.call('EXISTS', hold) == 1 then return 'ok' end
local bal = redis.call('HGET', ws, 'bal')
if not bal then return 'load_workspace' end
local limited = ARGV[3] ~= ''
if limited and not redis.call('HGET', key, 'used') then return 'load_key' end
if ARGV[8] ~= '' then
  local n = redis.call('INCR', KEYS[5])
  if n == 1 then redis.call('EXPIRE', KEYS[5], 120) end
  if n > tonumber(ARGV[8]) then return 'rate_limited' end
end
if tonumber(bal) - tonumber(redis.call('HGET', ws, 'held') or '0') < amount then return 'insufficient' end
if limited then
  if redis.call('HGET', key, 'period') ~= ARGV[4] then
    -- a new limit period: load its usage again (PostgreSQL's part of it plus what is unflushed)
    redis.call('HDEL', key, 'used')
    return 'load_key'
  end
  local used = tonumber(redis.call('HGET', key, 'used'))
  if used + tonumber(redis.call('HGET', key, 'held') or '0') + amount > tonumber(ARGV[3]) then
    return 'key_limit'
  end
  redis.call('HINCRBY', key, 'held', amount)
end
redis.call('HINCRBY', ws, 'held', amount)
redis.call('HSET', hold, 'ws', ARGV[6], 'key', ARGV[7], 'amount', amount, 'keyheld', limited and '1' or '0')
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2])
return 'ok'
"""

# KEYS (one shard's): workspace hash, key hash, hold hash, holds zset, done marker, generation json, queue
# ARGV: request id, cost, period, record json, done ttl, generation ttl
# Returns 1 when applied, 0 when this request was settled before (exactly once, design §4.2).
SETTLE = (
    _SHARD
    + """
if redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
local cost = tonumber(ARGV[2])
local hold = redis.call('HMGET', KEYS[3], 'amount', 'keyheld')
if hold[1] then
  redis.call('HINCRBY', KEYS[1], 'held', 0 - tonumber(hold[1]))
  if hold[2] == '1' then redis.call('HINCRBY', KEYS[2], 'held', 0 - tonumber(hold[1])) end
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
if cost > 0 then
  if redis.call('HEXISTS', KEYS[1], 'bal') == 1 then redis.call('HINCRBY', KEYS[1], 'bal', 0 - cost) end
  redis.call('HINCRBY', KEYS[1], 'unfl', cost)
  if KEYS[2] ~= SHARD .. 'key:-' then
    if redis.call('HGET', KEYS[2], 'period') == ARGV[3] then redis.call('HINCRBY', KEYS[2], 'used', cost) end
    redis.call('HINCRBY', KEYS[2], 'unfl:' .. ARGV[3], cost)
  end
end
redis.call('RPUSH', KEYS[7], ARGV[4])
redis.call('SET', KEYS[5], '1', 'EX', ARGV[5])
redis.call('SET', KEYS[6], ARGV[4], 'EX', ARGV[6])
return 1
"""
)

# KEYS: workspace hash. ARGV: PostgreSQL's balance, the version seen before reading it.
# Refused (0) while a batch is being written or if one was written since: the caller reads again.
LOAD_WORKSPACE = """
if redis.call('HEXISTS', KEYS[1], 'bal') == 1 then return 1 end
if tonumber(redis.call('HGET', KEYS[1], 'flushing') or '0') > 0 then return 0 end
if (redis.call('HGET', KEYS[1], 'ver') or '0') ~= ARGV[2] then return 0 end
local unflushed = tonumber(redis.call('HGET', KEYS[1], 'unfl') or '0')
redis.call('HSET', KEYS[1], 'bal', tonumber(ARGV[1]) - unflushed)
return 1
"""

# KEYS: a workspace or key hash. The version a load reads before it reads PostgreSQL (LOAD_* compare it).
VERSION = """
return redis.call('HGET', KEYS[1], 'ver')
"""

# KEYS: a request's hold hash and its generation's JSON copy (one workspace's shard). Whether the request is
# still in flight, and the copy (nil until it is settled, and again once expired): /api/v1/generation's read.
LOOKUP = """
return {redis.call('EXISTS', KEYS[1]), redis.call('GET', KEYS[2])}
"""

# KEYS: a rate counter (RESERVE's). ARGV: its expiry in seconds. A free request counted in the key's minute
# as RESERVE counts a billed one; returns the count.
COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""

# KEYS: key hash. ARGV: PostgreSQL's usage in the current period, the period, the version seen.
LOAD_KEY = """
if redis.call('HEXISTS', KEYS[1], 'used') == 1 then return 1 end
if tonumber(redis.call('HGET', KEYS[1], 'flushing') or '0') > 0 then return 0 end
if (redis.call('HGET', KEYS[1], 'ver') or '0') ~= ARGV[3] then return 0 end
local unflushed = tonumber(redis.call('HGET', KEYS[1], 'unfl:' .. ARGV[2]) or '0')
redis.call('HSET', KEYS[1], 'used', tonumber(ARGV[1]) + unflushed, 'period', ARGV[2])
return 1
"""

# Records carry `ws` and `key` (string ids) for these scripts; the rest is for the writer. The meter writes
# them first (`RedisMeter.settle`), so they are read off the record's start: decoding a whole record was
# most of a claim's cost in Redis (bench/README.md). A record of another shape is decoded.
_MARK_FLUSHING = """
local function ids_of(item)
  local ws, key = string.match(item, '^{"ws":"([^"]*)","key":"([^"]*)"')
  if ws then return ws, key end
  local record = cjson.decode(item)
  return record.ws, record.key
end
local function mark_flushing(items, delta)
  local seen = {}
  for _, item in ipairs(items) do
    local ws, key = ids_of(item)
    local names = {SHARD .. 'ws:' .. ws}
    if key ~= '' then table.insert(names, SHARD .. 'key:' .. key) end
    for _, name in ipairs(names) do
      if not seen[name] then
        seen[name] = true
        redis.call('HINCRBY', name, 'flushing', delta)
      end
    end
  end
end
"""

# KEYS (one shard's): queue, the batch's inflight list, inflights zset. ARGV: batch size, now, batch token.
CLAIM = (
    _SHARD
    + _MARK_FLUSHING
    + """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then return items end
redis.call('LTRIM', KEYS[1], #items, -1)
redis.call('RPUSH', KEYS[2], unpack(items))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
mark_flushing(items, 1)
return items
"""
)

# After the batch is in PostgreSQL. KEYS (one shard's): inflight list, inflights zset, dead-letter list.
# ARGV: batch token, JSON {"ws": {id: cost}, "keys": {id: {period: cost}}} with every id of the batch,
#       then the records PostgreSQL refused, if any (kept aside; their costs are not in the JSON).
# Returns 0 if the batch was requeued meanwhile: whoever writes it again does the accounting.
COMPLETE = (
    _SHARD
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 3, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
local done = cjson.decode(ARGV[2])
for ws, cost in pairs(done.ws) do
  local name = SHARD .. 'ws:' .. ws
  redis.call('HINCRBY', name, 'unfl', 0 - cost)
  redis.call('HINCRBY', name, 'flushing', -1)
  redis.call('HINCRBY', name, 'ver', 1)
end
for key, periods in pairs(done.keys) do
  local name = SHARD .. 'key:' .. key
  for period, cost in pairs(periods) do
    local field = 'unfl:' .. period
    if redis.call('HINCRBY', name, field, 0 - cost) == 0 then redis.call('HDEL', name, field) end
  end
  redis.call('HINCRBY', name, 'flushing', -1)
  redis.call('HINCRBY', name, 'ver', 1)
end
return 1
"""
)

# Put batches back at the head of the queue: a writer failed, or died (its batch is older than a cutoff).
# KEYS (one shard's): inflights zset, queue.
# ARGV: a cutoff (claimed at or before it), or 'token' and one batch token.
REQUEUE = (
    _SHARD
    + _MARK_FLUSHING
    + """
local tokens
if ARGV[1] == 'token' then tokens = {ARGV[2]} else
  tokens = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
end
local moved = 0
for _, token in ipairs(tokens) do
  local name = SHARD .. 'inflight:' .. token
  local items = redis.call('LRANGE', name, 0, -1)
  if #items > 0 then
    mark_flushing(items, -1)
    for i = #items, 1, -1 do redis.call('LPUSH', KEYS[2], items[i]) end
    moved = moved + #items
  end
  redis.call('DEL', name)
  redis.call('ZREM', KEYS[1], token)
end
return moved
"""
)

# Release the holds of requests that never settled (a crashed process; design §4.4).
# KEYS: one shard's holds zset. ARGV: now, batch size.
REAP = (
    _SHARD
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, request_id in ipairs(expired) do
  local name = SHARD .. 'hold:' .. request_id
  local hold = redis.call('HMGET', name, 'ws', 'key', 'amount', 'keyheld')
  if hold[3] then
    redis.call('HINCRBY', SHARD .. 'ws:' .. hold[1], 'held', 0 - tonumber(hold[3]))
    if hold[4] == '1' then
      redis.call('HINCRBY', SHARD .. 'key:' .. hold[2], 'held', 0 - tonumber(hold[3]))
    end
    redis.call('DEL', name)
  end
  redis.call('ZREM', KEYS[1], request_id)
end
return #expired
"""
)

# KEYS: one shard's holds zset. ARGV: a new expiry (epoch seconds), then request ids. The holds still there
# (neither settled nor reaped) expire then; the others are not brought back. Returns how many moved.
RENEW = """
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[i])
end
return renewed
"""

# Which settlements Redis still holds: KEYS are done markers of one shard (one cluster slot); 1 or 0 each.
HELD = """
local held = {}
for i, key in ipairs(KEYS) do
  held[i] = redis.call('EXISTS', key)
end
return held
"""

# --- A provider's slots shared by every gateway process (gateway/provider_slots.py, ADR 0029) ---------
# KEYS: one provider's leases (a zset in a hash tag of its own: one cluster slot). A lease is a member
# scored with its expiry in ms, Redis's clock: a process that dies without giving its leases back holds
# them only until they lapse. The zset lives as long as its last lease could.
_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# ARGV: the provider's limit, the new lease's id, a lease's length (ms). 1 if taken, 0 if every slot is.
SLOT_TAKE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

# ARGV: the lease's id. 1 if it was there (0: it had lapsed, or was never taken).
SLOT_GIVE_BACK = """
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

# ARGV: a lease's length (ms), then lease ids. Each one still there runs a full length from now (one past
# its expiry but not yet removed too: no SLOT_TAKE ran since, so nobody has its slot); one that is gone is
# not brought back (the slot may be another's by now). Returns the ids that were not there.
SLOT_RENEW = (
    _NOW_MS
    + """
local expires = now + tonumber(ARGV[1])
local missing = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], expires, ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return missing
"""
)

# --- Route cooldowns shared by every gateway process (gateway/route_health.py, ADR 0027) -------------------
# KEYS: the cooldowns' hash (one key: one cluster slot). A field is a route ("<provider slug>\n<upstream
# model>"); its value the end of the route's cooldown in ms on Redis's clock, or, negated, when a process saw
# it answer again. A field past either by FORGET ms is removed by the next read.

# ARGV: the route, the cooldown's length (ms).
ROUTE_COOL = (
    _NOW_MS
    + """
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
return 1
"""
)

# ARGV: the route.
ROUTE_RESTORE = (
    _NOW_MS
    + """
redis.call('HSET', KEYS[1], ARGV[1], -now)
return 1
"""
)

# ARGV: FORGET (ms). Returns Redis's now (ms), then each route and its value.
ROUTE_READ = (
    _NOW_MS
    + """
local fields = redis.call('HGETALL', KEYS[1])
local found = {now}
for i = 1, #fields, 2 do
  local value = tonumber(fields[i + 1])
  if math.abs(value) + tonumber(ARGV[1]) < now then
    redis.call('HDEL', KEYS[1], fields[i])
  else
    found[#found + 1] = fields[i]
    found[#found + 1] = value
  end
end
return found
"""
)
