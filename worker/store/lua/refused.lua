-- refused.lua: record events the publisher refused before any script saw them (bad fields).
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {now (ms), ttl (s), events: [{e: event id, err: JSON}]}
-- Returns  the number of events marked
--
-- Each gets `mark_refused` (see _lib.lua): status dead_lettered at stage publish, with the error,
-- for the results TTL; an event known otherwise is left alone. Its dead letter is written beside
-- this call, in the same round trip.

local cfg = cjson.decode(ARGV[1])
local marked = 0
for _, ev in ipairs(as_list(cfg.events)) do
  mark_refused(ev.e, ev.err, cfg.now, cfg.ttl)
  marked = marked + 1
end
return marked
