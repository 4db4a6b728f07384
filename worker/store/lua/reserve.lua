-- reserve.lua: take the planned bundles of one flush, in plan order, and set the groups' due times.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {now, claim_ttl, linger, max_age (ms), ttl (s), snap_seq,
--                bundles: [{id, ev: [eventIds], x: [entity keys written], s: [entity keys
--                           referenced], layout: JSON string, groups: [groups of its events]}],
--                rejects: [{e, err: JSON string}],
--                groups: [{g, hint: 'now'|'linger'|'wait', wait: [bundle ids]}]}
-- Returns  two strings per bundle: id, 'taken' | 'skipped' | 'raced'
--
-- A bundle is taken only when every event is still pending in its buffer, and no lock, nor a
-- bundle skipped earlier in this call, conflicts with its own: written keys need no other writer
-- or reader, referenced keys no writer. Taking it is all or nothing: exclusive and shared locks
-- (no TTL), events out of their buffers, and the record written `planned` under a claim held by
-- the caller (fence 1, claim expiry in `claims`). A skipped bundle's keys block every later bundle
-- that conflicts with them, so nothing overtakes what it depends on.
-- Rejected events (no bundle can carry them) are dead-lettered.
-- Then each group of the flush: empty, it leaves the due schedule; otherwise it is due at once
-- (hint 'now', or a race), after the linger (hint 'linger', or events published meanwhile), or
-- when a blocking bundle is recorded (registered in `waiting:`), with max age as a fallback.

local cfg = cjson.decode(ARGV[1])
local now = cfg.now
local out = {}
local xskip, sskip = {}, {}
local raced = false
local extra_wait = {} -- group -> {bundle ids} from skipped bundles

local function event_fields(eid)
  local h = redis.call('HMGET', P .. 'ev:' .. eid, 'g', 'k', 'tr', 'b', 'st')
  return {eid = eid, g = h[1], k = h[2], tr = split(h[3]), b = tonumber(h[4]) or 0, st = h[5]}
end

local function blockers_of(b)
  local found, conflict = {}, false
  for _, x in ipairs(as_list(b.x)) do
    if xskip[x] or sskip[x] then conflict = true end
    local writer = redis.call('HGET', P .. 'xlock', x)
    if writer then conflict = true; found[#found + 1] = writer end
    for _, reader in ipairs(redis.call('SMEMBERS', P .. 'slock:' .. x)) do
      conflict = true; found[#found + 1] = reader
    end
  end
  for _, s in ipairs(as_list(b.s)) do
    if xskip[s] then conflict = true end
    local writer = redis.call('HGET', P .. 'xlock', s)
    if writer then conflict = true; found[#found + 1] = writer end
  end
  return conflict, found
end

for _, b in ipairs(as_list(cfg.bundles)) do
  local evs, ok = {}, true
  for _, eid in ipairs(as_list(b.ev)) do
    local e = event_fields(eid)
    if e.st ~= 'pending' or not e.g or not redis.call('ZSCORE', P .. 'buf:' .. e.g, eid) then
      ok = false
      break
    end
    evs[#evs + 1] = e
  end
  local status = 'taken'
  if not ok then
    status = 'raced'
    raced = true
  else
    local conflict, found = blockers_of(b)
    if conflict then
      status = 'skipped'
      for _, g in ipairs(as_list(b.groups)) do
        extra_wait[g] = extra_wait[g] or {}
        for _, bid in ipairs(found) do table.insert(extra_wait[g], bid) end
      end
    end
  end
  if status ~= 'taken' then
    for _, x in ipairs(as_list(b.x)) do xskip[x] = true end
    for _, s in ipairs(as_list(b.s)) do sskip[s] = true end
  else
    for _, x in ipairs(as_list(b.x)) do redis.call('HSET', P .. 'xlock', x, b.id) end
    for _, s in ipairs(as_list(b.s)) do redis.call('SADD', P .. 'slock:' .. s, b.id) end
    for _, e in ipairs(evs) do
      buffer_remove(e.eid, e.g, e.k, e.tr, e.b)
      redis.call('HSET', P .. 'ev:' .. e.eid, 'st', 'in_flight', 'bd', b.id, 'upd', now)
    end
    local expiry = now + cfg.claim_ttl
    redis.call('HSET', P .. 'bd:' .. b.id, 'st', 'planned', 'fence', 1, 'cexp', expiry,
               'ev', cjson.encode(as_list(b.ev)), 'x', cjson.encode(as_list(b.x)),
               's', cjson.encode(as_list(b.s)), 'layout', b.layout,
               'groups', cjson.encode(as_list(b.groups)), 'n', #evs, 'att', 0, 'stale', 0,
               'created', now, 'upd', now)
    redis.call('ZADD', P .. 'claims', expiry, b.id)
    redis.call('HINCRBY', P .. 'stats', 'inflight', #evs)
    redis.call('HINCRBY', P .. 'stats', 'bundles', 1)
  end
  out[#out + 1] = b.id
  out[#out + 1] = status
end

for _, r in ipairs(as_list(cfg.rejects)) do
  local key = P .. 'ev:' .. r.e
  local h = redis.call('HMGET', key, 'g', 'k', 'tr', 'b', 'st', 'body', 'pub', 'rd')
  if h[5] == 'pending' and h[1] and buffer_remove(r.e, h[1], h[2], split(h[3]), tonumber(h[4]) or 0) then
    redis.call('HSET', key, 'st', 'dead_lettered', 'fate', 'FAILED', 'err', r.err,
               'stage', 'flush', 'fin', now, 'upd', now)
    redis.call('EXPIRE', key, cfg.ttl)
    if h[8] then redis.call('EXPIRE', P .. 'ref:' .. h[8], cfg.ttl) end
    dead_letter(r.e, 'flush', r.err, h[6], now, {publishedAt = h[7], group = h[1]})
  end
end

for _, gi in ipairs(as_list(cfg.groups)) do
  local g = gi.g
  local bkey = P .. 'buf:' .. g
  if redis.call('ZCARD', bkey) == 0 then
    redis.call('ZREM', P .. 'due', g)
    redis.call('HDEL', P .. 'gstat', 'n|' .. g, 'b|' .. g, 't|' .. g)
  else
    redis.call('HSET', P .. 'gstat', 't|' .. g, now)
    local registered = 0
    local waits = as_list(gi.wait)
    for _, bid in ipairs(as_list(extra_wait[g])) do waits[#waits + 1] = bid end
    for _, bid in ipairs(waits) do
      if bundle_alive(bid) then
        redis.call('SADD', P .. 'waiting:' .. bid, g)
        registered = registered + 1
      end
    end
    local due
    if raced or gi.hint == 'now' then
      due = now
    elseif gi.hint == 'linger' then
      due = now + cfg.linger
    elseif registered > 0 then
      due = now + cfg.max_age
    else
      due = now
    end
    if due > now + cfg.linger then
      local newer = redis.call('ZRANGEBYSCORE', bkey, '(' .. cfg.snap_seq, '+inf', 'LIMIT', 0, 1)
      if #newer > 0 then due = now + cfg.linger end
    end
    redis.call('ZADD', P .. 'due', due, g)
  end
end

return out
