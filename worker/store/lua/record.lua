-- record.lua: the outcome of a bundle, recorded once, fenced.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {id, fence, now (ms), ttl (s), status: the answer's status,
--                outcomes: [{e, f: fate, err?: JSON string, r?: reason, bt?: bound-to event,
--                            rs?: 1 when sent again after a read-back (flag `amb` kept)}],
--                replan: [bundles as commit.lua takes them]: the events it sends back, planned
--                        again by the caller}
-- Returns  0 when refused (no record, another fence, already recorded); else
--          [1, final events, events back in the ready log, dead letters, events replanned,
--           ids of bundles that became ready to send...]
--
-- Atomically: each event of the bundle gets its outcome. APPLIED, COALESCED and FAILED are final:
-- the event hash (and the ref it defines) get the results TTL, and a FAILED event is dead-lettered
-- with its error and payload. CANCELLED, UNMERGED and RETRY are sent again: the caller planned
-- them again (`replan`; UNMERGED ones never merge again), and those bundles take this one's
-- place (`replace` in _lib.lua): the bundles that waited for it and conflict with one of them
-- wait for it too, so nothing planned after the events sent back overtakes them, and nothing is
-- read or planned again but those events. An event sent back that no replacement carries (one
-- without an outcome, recorded as RETRY, or one the caller could not plan) goes back to the ready
-- log under its original seq, and the waiting bundles that touch its entities give back their
-- operations on them (to the log, in seq order, never sent). Then the bundle leaves the scheduler
-- (`release`): its holds go and each bundle waiting for it loses a predecessor. A slow bundle
-- (STALE or parked) also lets the events it blocked back into the log. The record becomes
-- `recorded` with the results TTL.

local cfg = cjson.decode(ARGV[1])
local now = cfg.now
local id = cfg.id
local key = P .. 'bd:' .. id
local h = redis.call('HMGET', key, 'st', 'fence', 'x', 's', 'stale', 'task', 'ev', 'park', 'slow')
if not h[1] or h[1] == 'recorded' or h[1] == 'waiting'
   or tonumber(h[2]) ~= tonumber(cfg.fence) then
  return 0
end
local task = h[6]

local final_status = {APPLIED = 'applied', COALESCED = 'coalesced', FAILED = 'dead_lettered'}
local finals, rebuffered, replanned, letters, seen = 0, 0, 0, 0, {}
local replan = as_list(cfg.replan)
local replaced_by = {}
for _, b in ipairs(replan) do
  for _, eid in ipairs(as_list(b.ev)) do replaced_by[eid] = b.id end
end
local written, read = {}, {} -- the keys of the events sent back (see release)

local function settle(o)
  local ekey = P .. 'ev:' .. o.e
  local e = redis.call('HMGET', ekey, 'st', 'bd', 'att', 'rd')
  if e[1] ~= 'in_flight' or e[2] ~= id then return end
  seen[o.e] = true
  local status = final_status[o.f]
  local attempts = (tonumber(e[3]) or 0) + 1
  if status then
    redis.call('HSET', ekey, 'st', status, 'fate', o.f, 'err', o.err or '', 'reason', o.r or '',
               'bound', o.bt or '', 'task', task or '', 'att', attempts, 'fin', now, 'upd', now)
    if o.f == 'FAILED' then
      local f = redis.call('HMGET', ekey, 'g', 'h', 'd', 'pub')
      redis.call('HSET', ekey, 'stage', 'record')
      dead_letter(o.e, 'record', o.err, stored_body(f[2], f[3]), now, {bundleId = id,
                  taskId = task, publishedAt = f[4], attempts = attempts, group = f[1],
                  reason = o.r, boundTo = o.bt})
      letters = letters + 1
    end
    redis.call('EXPIRE', ekey, cfg.ttl)
    if e[4] then redis.call('EXPIRE', P .. 'ref:' .. e[4], cfg.ttl) end
    finals = finals + 1
  else
    local to = replaced_by[o.e]
    redis.call('HSET', ekey, 'st', to and 'in_flight' or 'pending', 'bd', to or '', 'fate', o.f,
               'err', o.err or '', 'reason', o.r or '', 'att', attempts, 'upd', now)
    if o.f == 'UNMERGED' then redis.call('HSET', ekey, 'nm', 1) end
    if o.rs then redis.call('HSET', ekey, 'amb', 1) end
    if to then
      replanned = replanned + 1
    else
      local f = redis.call('HMGET', ekey, 'k', 'tr', 'b', 'seq')
      ready_add(o.e, tonumber(f[4]), tonumber(f[3]) or 0, now)
      written[f[1]] = true
      for _, r in ipairs(split(f[2])) do
        if r ~= f[1] then read[r] = true end
      end
      rebuffered = rebuffered + 1
    end
  end
end

for _, o in ipairs(as_list(cfg.outcomes)) do settle(o) end
for _, eid in ipairs(as_list(cjson.decode(h[7] or '[]'))) do
  if not seen[eid] then settle({e = eid, f = 'RETRY', r = 'no outcome was recorded for it'}) end
end
redis.call('HINCRBY', P .. 'stats', 'inflight', 0 - (finals + rebuffered))

-- recorded before its followers are looked at: a trimmed follower gives its holds back only to
-- predecessors still unfinished, never to this one
redis.call('HSET', key, 'st', 'recorded', 'cexp', 0, 'np', 0, 'fin', now, 'upd', now,
           'status', cfg.status or '', 'finals', finals, 'rebuffered', rebuffered,
           'replanned', replanned)
local x_keys, s_keys = decoded(h[3]), decoded(h[4])
local replacements = {}
if #replan > 0 then replacements = replace(id, replan, now) end
local ready_ids, moved = release(id, x_keys, s_keys, written, read, now)
for _, r in ipairs(replacements) do ready_ids[#ready_ids + 1] = r end
if replanned > 0 then
  -- read and planned again, by the caller: counted as reads and plans like the ready log's
  redis.call('HINCRBY', P .. 'stats', 'replanned', replanned)
  redis.call('HINCRBY', P .. 'stats', 'read', replanned)
  redis.call('HINCRBY', P .. 'stats', 'planned', replanned)
end
if rebuffered > 0 then
  redis.call('HINCRBY', P .. 'stats', 'requeued', rebuffered + moved)
  stamp_sent_back(written, read)
  redis.call('ZADD', P .. 'due', now, '*')
end
if h[9] == '1' then unblock(id, x_keys, s_keys, now) end

redis.call('EXPIRE', key, cfg.ttl)
redis.call('ZREM', P .. 'claims', id)
redis.call('ZREM', P .. 'polls', id)
if redis.call('ZREM', P .. 'parked', id) == 1 then
  redis.call('HINCRBY', P .. 'stats', 'parked', -1)
  redis.call('HINCRBY', P .. 'stats', 'pev', -#decoded(h[7]))
end
if h[5] == '1' then redis.call('HINCRBY', P .. 'stats', 'stale', -1) end
redis.call('HINCRBY', P .. 'stats', 'bundles', -1)
if task then
  redis.call('HSET', P .. 'task:' .. task, 'status', cfg.status or '', 'fin', now, 'upd', now)
  redis.call('EXPIRE', P .. 'task:' .. task, cfg.ttl)
end
local reply = {1, finals, rebuffered, letters, replanned}
for _, d in ipairs(ready_ids) do reply[#reply + 1] = d end
return reply
