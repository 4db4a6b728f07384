-- settle.lua: final outcomes of a bundle being recorded, one chunk per call, fenced.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {id, fence, now (ms), ttl (s),
--                outcomes: [{e, f: APPLIED|COALESCED|FAILED, err?: JSON string, r?, bt?}]}
-- Returns  0 when refused (no record, another fence, waiting or already recorded); else
--          [1, events settled, dead letters]
--
-- Why: recording a bundle of 500 operations in one call held Redis for tens of ms. A bundle's
-- final outcomes are settled here, at most `record_chunk` per call, before record.lua (the last
-- call) sends the rest again, releases the bundle's holds and makes it `recorded`. Each event is
-- settled as record.lua would (`settle_final`): only while still in flight in this bundle, so a
-- chunk is final once applied: if the worker dies before the last call, the record stays as it
-- was (`sending` or `sent`, its holds kept), recovery records it again under a new fence, and the
-- events settled here are neither counted, dead-lettered nor sent again a second time.
--
-- Counters stay exact between calls: stats `inflight` drops by the events settled (and `pev` too
-- while the bundle is parked, with the record's `pv`, the events it counts there); the record
-- keeps `sf` and `sl` (events settled here and their dead letters), which record.lua adds to
-- its own `finals` and dead letters.

local cfg = cjson.decode(ARGV[1])
local id = cfg.id
local key = P .. 'bd:' .. id
local h = redis.call('HMGET', key, 'st', 'fence', 'task', 'park', 'pv', 'ev', 'sf')
if not h[1] or h[1] == 'recorded' or h[1] == 'waiting'
   or tonumber(h[2]) ~= tonumber(cfg.fence) then
  return 0
end

local settled, letters = 0, 0
for _, o in ipairs(as_list(cfg.outcomes)) do
  if FINAL_STATUS[o.f] then
    local done, lettered = settle_final(o, id, h[3], cfg.now, cfg.ttl)
    if done then
      settled = settled + 1
      letters = letters + lettered
    end
  end
end

if settled > 0 then
  redis.call('HINCRBY', P .. 'stats', 'inflight', 0 - settled)
  redis.call('HINCRBY', key, 'sf', settled)
  if letters > 0 then redis.call('HINCRBY', key, 'sl', letters) end
  if h[4] == '1' then
    -- a parked bundle's events are counted in `pev` (mark.lua); a record parked before `pv` was
    -- kept counts all its events not settled yet
    local counted = tonumber(h[5]) or (#decoded(h[6]) - (tonumber(h[7]) or 0))
    redis.call('HSET', key, 'pv', counted - settled)
    redis.call('HINCRBY', P .. 'stats', 'pev', 0 - settled)
  end
  redis.call('HSET', key, 'upd', cfg.now)
end
return {1, settled, letters}
