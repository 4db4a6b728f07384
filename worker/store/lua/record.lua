-- record.lua: the outcome of a bundle, recorded once, fenced: the last call of a record.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {id, fence, now (ms), ttl (s), status: the answer's status,
--                outcomes: [{e, f: fate, err?: JSON string, r?: reason, bt?: bound-to event,
--                            rs?: 1 when sent again after a read-back (flag `amb` kept)}],
--                settled: [ids of events whose final outcome settle.lua took, in earlier calls],
--                keys: how many held keys this call releases at most (more: release.lua),
--                replan: [bundles as commit.lua takes them]: the events it sends back, planned
--                        again by the caller}
-- Returns  0 when refused (no record, another fence, already recorded); else
--          [1 (2: its holds are left to release.lua), final events, events back in the ready
--           log, dead letters, events replanned, ids of bundles that became ready to send...];
--          final events and dead letters count those settle.lua settled for this record too
--          (its `sf`, `sl`), in any earlier call
--
-- Atomically: each event of the bundle gets its outcome. APPLIED, COALESCED and FAILED are final:
-- the event hash (and the ref it defines) get the results TTL, and a FAILED event is dead-lettered
-- with its error and payload (`settle_final` in _lib.lua; a large bundle's first final outcomes
-- are settled by settle.lua in earlier calls of bounded size, the last ones here). CANCELLED,
-- UNMERGED and RETRY are sent again: the caller planned them again (`replan`; UNMERGED ones never
-- merge again), and those bundles take this one's place (`replace` in _lib.lua): the bundles that
-- waited for it and conflict with one of them wait for it too, so nothing planned after the
-- events sent back overtakes them, and nothing is read or planned again but those events. An
-- event sent back that no replacement carries (one without an outcome, recorded as RETRY, or one
-- the caller could not plan) goes back to the ready log under its original seq, and the waiting
-- bundles that touch its entities give back their operations on them (to the log, in seq order,
-- never sent). An event no longer in flight in this bundle (settled by an earlier call, maybe
-- before a crash) is left as it is, whatever outcome it is given here. Then the bundle leaves the
-- scheduler (`release`): its holds go (or, past `keys` of them, in the next calls: release.lua)
-- and each bundle waiting for it loses a predecessor. A slow bundle (STALE or parked) also lets
-- the events it blocked back into the log. The record becomes `recorded` with the results TTL.

local cfg = cjson.decode(ARGV[1])
local now = cfg.now
local id = cfg.id
local key = P .. 'bd:' .. id
local h = redis.call('HMGET', key, 'st', 'fence', 'x', 's', 'stale', 'task', 'ev', 'park', 'slow',
                    'sf', 'sl', 'pv')
if not h[1] or h[1] == 'recorded' or h[1] == 'waiting'
   or tonumber(h[2]) ~= tonumber(cfg.fence) then
  return 0
end
local task = h[6]

local finals, rebuffered, replanned, letters, seen = 0, 0, 0, 0, {}
local replan = as_list(cfg.replan)
local replaced_by = {}
for _, b in ipairs(replan) do
  for _, eid in ipairs(as_list(b.ev)) do replaced_by[eid] = b.id end
end
for _, eid in ipairs(as_list(cfg.settled)) do seen[eid] = true end
local written, read = {}, {} -- the keys of the events sent back (see release)

local function settle(o)
  if FINAL_STATUS[o.f] then
    local done, lettered = settle_final(o, id, task, now, cfg.ttl)
    if done then
      seen[o.e] = true
      finals = finals + 1
      letters = letters + lettered
    end
    return
  end
  local ekey = P .. 'ev:' .. o.e
  local e = redis.call('HMGET', ekey, 'st', 'bd', 'att')
  if e[1] ~= 'in_flight' or e[2] ~= id then return end
  seen[o.e] = true
  local attempts = (tonumber(e[3]) or 0) + 1
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

for _, o in ipairs(as_list(cfg.outcomes)) do settle(o) end
for _, eid in ipairs(as_list(cjson.decode(h[7] or '[]'))) do
  if not seen[eid] then settle({e = eid, f = 'RETRY', r = 'no outcome was recorded for it'}) end
end
redis.call('HINCRBY', P .. 'stats', 'inflight', 0 - (finals + rebuffered))
-- what settle.lua settled for this record in earlier calls (its counters already moved)
local settled_before = tonumber(h[10]) or 0
finals = finals + settled_before
letters = letters + (tonumber(h[11]) or 0)

-- recorded before its followers are looked at: a trimmed follower gives its holds back only to
-- predecessors still unfinished, never to this one
redis.call('HSET', key, 'st', 'recorded', 'cexp', 0, 'np', 0, 'fin', now, 'upd', now,
           'status', cfg.status or '', 'finals', finals, 'rebuffered', rebuffered,
           'replanned', replanned)
local x_keys, s_keys = decoded(h[3]), decoded(h[4])
local replacements = {}
if #replan > 0 then replacements = replace(id, replan, now) end
-- more keys than one call should release: release.lua releases its holds in the next calls (a
-- recorded holder counts as gone meanwhile: `bundle_alive`)
local later = #x_keys + #s_keys > (tonumber(cfg.keys) or math.huge)
local ready_ids, moved = release(id, later and {} or x_keys, later and {} or s_keys, written,
                                 read, now)
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
  -- the events it counts in `pev` (mark.lua), less those settle.lua settled since
  local counted = tonumber(h[12]) or (#decoded(h[7]) - settled_before)
  redis.call('HINCRBY', P .. 'stats', 'pev', 0 - counted)
end
if h[5] == '1' then redis.call('HINCRBY', P .. 'stats', 'stale', -1) end
redis.call('HINCRBY', P .. 'stats', 'bundles', -1)
if task then
  redis.call('HSET', P .. 'task:' .. task, 'status', cfg.status or '', 'fin', now, 'upd', now)
  redis.call('EXPIRE', P .. 'task:' .. task, cfg.ttl)
end
local reply = {later and 2 or 1, finals, rebuffered, letters, replanned}
for _, d in ipairs(ready_ids) do reply[#reply + 1] = d end
return reply
