-- claim.lua: a worker's claim on bundle records, to recover them or to poll their task.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {now, claim_ttl (ms), mode: 'recover'|'poll', ids: [bundle ids]}
-- Returns  14 strings per id: code, id, fence, st, task, iss, sent, pn, stale, layout, ev, att,
--          sat (when it last went `sending`), rcv (times its claimant was found gone, this mode)
--          code: 'ok' (claimed: fence is the new token), 'busy' (another worker's claim is live),
--          'gone' (no record, or recorded: schedule entries dropped), 'wait' (still waiting for
--          its predecessors: its stray claims entry is dropped), 'sent' (recover mode: the
--          poll schedule owns it; its claims entry is dropped and its poll kept), 'skip' (poll
--          mode: not a sent record; its poll entry is dropped)
--
-- A claim increments the record's fencing token; every later write by the claimant names it, and
-- a write with an older token is refused. The claim's expiry is the record's `cexp` and its score
-- in `claims` (recover) or `polls` (poll): a claimant that dies is found again once it passes.
-- A claim taken over from a claimant that died (its expiry passed while still set) counts in `rcv`
-- (recover) or `prcv` (poll): the caller treats work that keeps killing its workers as poison.

local cfg = cjson.decode(ARGV[1])
local now = cfg.now
local out = {}

local function emit(code, id, h, fence)
  local row = {code, id, tostring(fence or ''), h[1] or '', h[4] or '', h[5] or '', h[6] or '',
               h[7] or '', h[8] or '', h[9] or '', h[10] or '', h[11] or '', h[12] or '',
               h[13] or ''}
  for _, v in ipairs(row) do out[#out + 1] = v end
end

for _, id in ipairs(as_list(cfg.ids)) do
  local key = P .. 'bd:' .. id
  local h = redis.call('HMGET', key, 'st', 'fence', 'cexp', 'task', 'iss', 'sent', 'pn', 'stale',
                       'layout', 'ev', 'att', 'sat', 'rcv')
  if not h[1] or h[1] == 'recorded' then
    redis.call('ZREM', P .. 'claims', id)
    redis.call('ZREM', P .. 'polls', id)
    emit('gone', id, {})
  elseif h[1] == 'waiting' then
    redis.call('ZREM', P .. 'claims', id)
    emit('wait', id, h)
  elseif (tonumber(h[3]) or 0) > now then
    emit('busy', id, h)
  elseif cfg.mode == 'poll' and h[1] ~= 'sent' then
    redis.call('ZREM', P .. 'polls', id)
    emit('skip', id, h)
  elseif cfg.mode == 'recover' and h[1] == 'sent' then
    redis.call('ZREM', P .. 'claims', id)
    if not redis.call('ZSCORE', P .. 'polls', id) then
      redis.call('ZADD', P .. 'polls', now, id)
    end
    emit('sent', id, h)
  else
    local fence = redis.call('HINCRBY', key, 'fence', 1)
    local expiry = now + cfg.claim_ttl
    local counter = cfg.mode == 'poll' and 'prcv' or 'rcv'
    if (tonumber(h[3]) or 0) > 0 then
      h[13] = tostring(redis.call('HINCRBY', key, counter, 1))
    else
      h[13] = redis.call('HGET', key, counter)
    end
    redis.call('HSET', key, 'cexp', expiry, 'upd', now)
    if cfg.mode == 'poll' then
      redis.call('ZADD', P .. 'polls', expiry, id)
    else
      redis.call('ZADD', P .. 'claims', expiry, id)
    end
    emit('ok', id, h, fence)
  end
end

return out
