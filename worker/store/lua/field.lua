-- field.lua: one field of many events, in one reply.
--
-- KEYS[1]  source prefix
-- ARGV[1]  the field
-- ARGV[2..] event ids
-- Returns  the field of each event in the order asked (nil where the event or field is missing)
--
-- Why: a client pipeline of one HGET per event cost the client tens of microseconds per event
-- (a command to pack and a reply to parse each); a refused bundle asks this of its whole rest.

local out = {}
for i = 2, #ARGV do
  out[i - 1] = redis.call('HGET', P .. 'ev:' .. ARGV[i], ARGV[1])
end
return out
