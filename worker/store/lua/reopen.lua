-- reopen.lua: let publish.lua take a dead-lettered event again (a DLQ replay, invariant 8).
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {ids: [event ids]}
-- Returns  two strings per id: id, 'reopened' | the status that refused it ('' when unknown)
--
-- Runs in one MULTI with publish.lua and reopened.lua, so nothing slips between them. Only an
-- event whose status is dead_lettered (after being buffered: its stage is not publish) is
-- reopened: its attempts and stage are kept in `reopen:<eventId>` and its stage reads `publish`,
-- the one state publish.lua's dedupe lets through. An applied, coalesced, pending or in-flight
-- event is left alone, so publish.lua answers it as a duplicate; an event refused at publish (no
-- event hash) needs no reopening.

local cfg = cjson.decode(ARGV[1])
local out = {}
for _, eid in ipairs(as_list(cfg.ids)) do
  local key = P .. 'ev:' .. eid
  local h = redis.call('HMGET', key, 'st', 'stage', 'att', 'rp')
  out[#out + 1] = eid
  if h[1] == 'dead_lettered' and h[2] ~= 'publish' then
    redis.call('SET', P .. 'reopen:' .. eid,
               cjson.encode({att = tonumber(h[3]) or 0, stage = h[2] or '', rp = tonumber(h[4]) or 0}))
    redis.call('HSET', key, 'stage', 'publish')
    out[#out + 1] = 'reopened'
  else
    out[#out + 1] = h[1] or ''
  end
end
return out
