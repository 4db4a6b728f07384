-- record.lua: the outcome of a bundle, recorded once, fenced.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {id, fence, now (ms), ttl (s), status: the answer's status,
--                outcomes: [{e, f: fate, err?: JSON string, r?: reason, bt?: bound-to event,
--                            rs?: 1 when sent again after a read-back (flag `amb` kept)}]}
-- Returns  0 when refused (no record, another fence, already recorded); else
--          [1, final events, events back in buffers, dead letters]
--
-- Atomically: each event of the bundle gets its outcome. APPLIED, COALESCED and FAILED are final:
-- the event hash (and the ref it defines) get the results TTL, and a FAILED event is dead-lettered
-- with its error and payload. CANCELLED, UNMERGED and RETRY go back to a buffer under their
-- original seq (the one that holds their entity now, else their own group), so they stay ahead of
-- later events on it; UNMERGED ones never merge again. An atomic batch goes back whole into the
-- buffer of its first event (a flush orders by the `touch` index, not by `where`, so an entity
-- pending in two buffers for a while is still planned in publish order). An event of the bundle without an outcome
-- goes back too (as RETRY), so nothing is ever left in flight. Then the bundle's locks are
-- released, the groups waiting for it and the groups of its events that still hold events are
-- due at once, and the record becomes `recorded` with the results TTL.

local cfg = cjson.decode(ARGV[1])
local now = cfg.now
local id = cfg.id
local key = P .. 'bd:' .. id
local h = redis.call('HMGET', key, 'st', 'fence', 'x', 's', 'stale', 'task', 'ev', 'groups',
                     'park')
if not h[1] or h[1] == 'recorded' or tonumber(h[2]) ~= tonumber(cfg.fence) then return 0 end
local task = h[6]

local final_status = {APPLIED = 'applied', COALESCED = 'coalesced', FAILED = 'dead_lettered'}
local wake = {}
local finals, rebuffered, letters, seen = 0, 0, 0, {}
local batch_group = {} -- an atomic batch goes back whole into one buffer

local function buffer_for(e, batch)
  local group = redis.call('HGET', P .. 'where', e[4]) or e[3]
  if batch then
    batch_group[batch] = batch_group[batch] or group
    return batch_group[batch]
  end
  return group
end

local function settle(o)
  local ekey = P .. 'ev:' .. o.e
  local e = redis.call('HMGET', ekey, 'st', 'bd', 'g', 'k', 'tr', 'b', 'seq', 'body', 'pub',
                       'att', 'rd', 'ab')
  if e[1] ~= 'in_flight' or e[2] ~= id then return end
  seen[o.e] = true
  local status = final_status[o.f]
  local attempts = (tonumber(e[10]) or 0) + 1
  if status then
    redis.call('HSET', ekey, 'st', status, 'fate', o.f, 'err', o.err or '', 'reason', o.r or '',
               'bound', o.bt or '', 'task', task or '', 'att', attempts, 'fin', now, 'upd', now)
    if o.f == 'FAILED' then
      redis.call('HSET', ekey, 'stage', 'record')
      dead_letter(o.e, 'record', o.err, e[8], now, {bundleId = id, taskId = task,
                  publishedAt = e[9], attempts = attempts, group = e[3], reason = o.r,
                  boundTo = o.bt})
      letters = letters + 1
    end
    redis.call('EXPIRE', ekey, cfg.ttl)
    if e[11] then redis.call('EXPIRE', P .. 'ref:' .. e[11], cfg.ttl) end
    finals = finals + 1
  else
    local group = buffer_for(e, e[12])
    redis.call('HSET', ekey, 'st', 'pending', 'g', group, 'bd', '', 'fate', o.f,
               'err', o.err or '', 'reason', o.r or '', 'att', attempts, 'upd', now)
    if o.f == 'UNMERGED' then redis.call('HSET', ekey, 'nm', 1) end
    if o.rs then redis.call('HSET', ekey, 'amb', 1) end
    buffer_add(o.e, group, tonumber(e[7]), e[4], split(e[5]), tonumber(e[6]) or 0, now)
    wake[group] = true
    rebuffered = rebuffered + 1
  end
end

for _, o in ipairs(as_list(cfg.outcomes)) do settle(o) end
for _, eid in ipairs(as_list(cjson.decode(h[7] or '[]'))) do
  if not seen[eid] then settle({e = eid, f = 'RETRY', r = 'no outcome was recorded for it'}) end
end
redis.call('HINCRBY', P .. 'stats', 'inflight', -(finals + rebuffered))

for _, x in ipairs(as_list(cjson.decode(h[3] or '[]'))) do
  if redis.call('HGET', P .. 'xlock', x) == id then redis.call('HDEL', P .. 'xlock', x) end
end
for _, s in ipairs(as_list(cjson.decode(h[4] or '[]'))) do
  redis.call('SREM', P .. 'slock:' .. s, id)
end

for _, g in ipairs(redis.call('SMEMBERS', P .. 'waiting:' .. id)) do wake[g] = true end
redis.call('DEL', P .. 'waiting:' .. id)
for _, g in ipairs(as_list(cjson.decode(h[8] or '[]'))) do wake[g] = true end
for g in pairs(wake) do
  if redis.call('ZCARD', P .. 'buf:' .. g) > 0 then redis.call('ZADD', P .. 'due', now, g) end
end

redis.call('HSET', key, 'st', 'recorded', 'cexp', 0, 'fin', now, 'upd', now,
           'status', cfg.status or '', 'finals', finals, 'rebuffered', rebuffered)
redis.call('EXPIRE', key, cfg.ttl)
redis.call('ZREM', P .. 'claims', id)
redis.call('ZREM', P .. 'polls', id)
if redis.call('ZREM', P .. 'parked', id) == 1 then redis.call('HINCRBY', P .. 'stats', 'parked', -1) end
if h[5] == '1' then redis.call('HINCRBY', P .. 'stats', 'stale', -1) end
redis.call('HINCRBY', P .. 'stats', 'bundles', -1)
if task then
  redis.call('HSET', P .. 'task:' .. task, 'status', cfg.status or '', 'fin', now, 'upd', now)
  redis.call('EXPIRE', P .. 'task:' .. task, cfg.ttl)
end
return {1, finals, rebuffered, letters}
