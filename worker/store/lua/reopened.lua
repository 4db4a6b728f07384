-- reopened.lua: after publish.lua, finish the reopening of dead-lettered events (a DLQ replay).
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {ids: [event ids], now (ms)}
-- Returns  two strings per id: id, 'pending' (reopened: buffered again under the same id) |
--          'kept' (publish refused it: it stays dead-lettered at its old stage) | '' (not reopened)
--
-- publish.lua wrote the reopened event afresh (attempts 0); its attempts so far are put back and
-- its replays counted (`rp`), so the next submission is attempt n + 1. An event publish refused
-- (a ref no longer free, say) gets its stage back.

local cfg = cjson.decode(ARGV[1])
local out = {}
for _, eid in ipairs(as_list(cfg.ids)) do
  local stash_key = P .. 'reopen:' .. eid
  local stash = redis.call('GET', stash_key)
  out[#out + 1] = eid
  if not stash then
    out[#out + 1] = ''
  else
    redis.call('DEL', stash_key)
    local kept = cjson.decode(stash)
    local key = P .. 'ev:' .. eid
    if redis.call('HGET', key, 'st') == 'pending' then
      redis.call('HSET', key, 'att', kept.att, 'rp', kept.rp + 1, 'rpl', cfg.now)
      out[#out + 1] = 'pending'
    else
      redis.call('HSET', key, 'stage', kept.stage)
      out[#out + 1] = 'kept'
    end
  end
end
return out
