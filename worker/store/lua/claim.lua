-- claim.lua: a worker's claim on bundle records, to recover them or to poll their task.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {now, claim_ttl (ms), mode: 'recover'|'poll', ids: [bundle ids], any_time?}
-- Returns  15 strings per id: code, id, fence, st, task, iss, sent, pn, stale, layout, ev, att,
--          sat (when it last went `sending`), rcv (claimants found gone in a row, this mode),
--          trimmed ('1' when its layout was rewritten by a trim: checked again before sending)
--          code: 'ok' (claimed: fence is the new token), 'busy' (another worker's claim is live),
--          'gone' (no record, or recorded: schedule entries dropped), 'wait' (still waiting for
--          its predecessors: its stray claims entry is dropped), 'early' (its entry in this
--          mode's schedule is not due: nothing done), 'sent' (recover mode: the poll schedule
--          owns it; its claims entry is dropped and its poll kept), 'skip' (poll mode: not a
--          sent record; its poll entry is dropped)
--
-- A claim increments the record's fencing token; every later write by the claimant names it, and
-- a write with an older token is refused. The claim's expiry is the record's `cexp` and its score
-- in `claims` (recover) or `polls` (poll): a claimant that dies is found again once it passes.
--
-- Only an entry that is due is claimed: its score in the mode's schedule has passed, or is still
-- the one the ticker handed it out with (take_due.lua remembers it in `lc` / `lp`). A message
-- repeated after the work rescheduled the entry (next poll, retry time, read-back time) finds it
-- not due and does nothing, counted in stats `early`. `any_time` (an operator's abandon) skips
-- this check.
--
-- A claim taken over from a claimant that died (its expiry passed while still set, never renewed)
-- counts in `rcv` (recover) or `prcv` (poll); a claim that finds the previous one released (the
-- claimant wrote its result: next poll, retry, read-back time) starts the count again. The caller
-- treats work whose claimants keep dying, one after another, as poison.

local cfg = cjson.decode(ARGV[1])
local now = cfg.now
local out = {}
local schedule = P .. (cfg.mode == 'poll' and 'polls' or 'claims')
local handed = cfg.mode == 'poll' and 'lp' or 'lc'
local counter = cfg.mode == 'poll' and 'prcv' or 'rcv'
local early = 0

local function emit(code, id, h, fence)
  local row = {code, id, tostring(fence or ''), h[1] or '', h[4] or '', h[5] or '', h[6] or '',
               h[7] or '', h[8] or '', h[9] or '', h[10] or '', h[11] or '', h[12] or '',
               h[13] or '', h[15] or ''}
  for _, v in ipairs(row) do out[#out + 1] = v end
end

-- Whether the entry is due: its score passed, or the ticker handed it out and nobody moved it.
local function due(id, lease)
  if cfg.any_time then return true end
  local score = tonumber(redis.call('ZSCORE', schedule, id))
  if not score then return false end
  if score <= now then return true end
  local at = lease and string.match(lease, '^(%d+)/')
  return tonumber(at) == score
end

for _, id in ipairs(as_list(cfg.ids)) do
  local key = P .. 'bd:' .. id
  local h = redis.call('HMGET', key, 'st', 'fence', 'cexp', 'task', 'iss', 'sent', 'pn', 'stale',
                       'layout', 'ev', 'att', 'sat', counter, handed, 'trimmed')
  if not h[1] or h[1] == 'recorded' then
    redis.call('ZREM', P .. 'claims', id)
    redis.call('ZREM', P .. 'polls', id)
    emit('gone', id, {})
  elseif h[1] == 'waiting' then
    redis.call('ZREM', P .. 'claims', id)
    emit('wait', id, h)
  elseif (tonumber(h[3]) or 0) > now then
    emit('busy', id, h)
  elseif not due(id, h[14]) then
    early = early + 1
    emit('early', id, h)
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
    if (tonumber(h[3]) or 0) > 0 then
      h[13] = tostring(redis.call('HINCRBY', key, counter, 1))
    elseif h[13] then
      redis.call('HDEL', key, counter)
      h[13] = '0'
    end
    redis.call('HSET', key, 'cexp', expiry, 'upd', now)
    if h[14] then redis.call('HDEL', key, handed) end
    redis.call('ZADD', schedule, expiry, id)
    emit('ok', id, h, fence)
  end
end

if early > 0 then redis.call('HINCRBY', P .. 'stats', 'early', early) end
return out
