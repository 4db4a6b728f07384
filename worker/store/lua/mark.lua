-- mark.lua: fenced state changes of bundle records (everything but the final record).
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {now, claim_ttl (ms), items: [{op, id, fence, ...}]}, op one of
--          'sending'  planned -> sending: the request is about to leave (attempt counted);
--                     with {gate}, not while the source has a pause (answer 2: the caller asks
--                     pause.lua's gate, which decides whether to wait or to probe)
--          'sent'     sending -> sent: ACCEPTED as {task, iss}; first poll at {at}; claim dropped
--          'release'  planned|sending -> planned: certainly not processed; resubmit at {at}
--          'unknown'  sending stays sending (outcome unknown): claim dropped, {err} kept, read
--                     back at {at} (the claims schedule brings it to recovery again)
--          'park'     keep the state, leave the schedules: for the failure handling {err}; a
--                     slow holder from now on (`become_slow` in _lib.lua); its events counted
--                     in stats `pev` and in the record's `pv` (settle.lua and record.lua take
--                     them off)
--          'renew'    extend the claim by claim_ttl
--          'repoll'   sent: next poll at {at}, {stale} once past the deadline (a slow holder from
--                     then on), last {status}
-- Returns  one integer per item: 1 done, 0 refused (no record, another fence, or wrong state),
--          2 not done: the source has a pause (a gated 'sending')
--
-- Every write checks the fencing token: a worker whose claim was taken over writes nothing.

local cfg = cjson.decode(ARGV[1])
local now = cfg.now
local out = {}

local function apply(item)
  local key = P .. 'bd:' .. item.id
  local h = redis.call('HMGET', key, 'st', 'fence', 'stale', 'task', 'park')
  if not h[1] or tonumber(h[2]) ~= tonumber(item.fence) then return 0 end
  local st, op = h[1], item.op
  if op == 'sending' then
    if st ~= 'planned' then return 0 end
    if item.gate and redis.call('HEXISTS', P .. 'pause', 'until') == 1 then return 2 end
    local expiry = now + cfg.claim_ttl
    redis.call('HSET', key, 'st', 'sending', 'cexp', expiry, 'upd', now, 'sat', now)
    redis.call('HINCRBY', key, 'att', 1)
    redis.call('ZADD', P .. 'claims', expiry, item.id)
  elseif op == 'sent' then
    if st ~= 'sending' then return 0 end
    redis.call('HSET', key, 'st', 'sent', 'task', item.task, 'iss', item.iss, 'sent', now,
               'pn', 0, 'cexp', 0, 'upd', now)
    redis.call('ZREM', P .. 'claims', item.id)
    redis.call('ZADD', P .. 'polls', item.at, item.id)
    redis.call('HSET', P .. 'task:' .. item.task, 'bd', item.id, 'status', 'ACCEPTED',
               'created', now, 'upd', now, 'polls', 0)
  elseif op == 'release' then
    if st ~= 'planned' and st ~= 'sending' then return 0 end
    redis.call('HSET', key, 'st', 'planned', 'cexp', 0, 'err', item.err or '', 'upd', now)
    redis.call('ZADD', P .. 'claims', item.at, item.id)
  elseif op == 'unknown' then
    if st ~= 'sending' then return 0 end
    redis.call('HSET', key, 'cexp', 0, 'err', item.err or '', 'upd', now)
    redis.call('HINCRBY', key, 'rb', 1)
    redis.call('ZADD', P .. 'claims', item.at, item.id)
  elseif op == 'park' then
    if st == 'recorded' then return 0 end
    redis.call('HSET', key, 'cexp', 0, 'err', item.err or '', 'park', 1, 'upd', now)
    redis.call('ZREM', P .. 'claims', item.id)
    redis.call('ZREM', P .. 'polls', item.id)
    if redis.call('ZADD', P .. 'parked', now, item.id) == 1 then
      -- its events still in flight (settle.lua may have settled some before a crash): `pv`
      local f = redis.call('HMGET', key, 'ev', 'sf')
      local counted = #decoded(f[1]) - (tonumber(f[2]) or 0)
      redis.call('HSET', key, 'pv', counted)
      redis.call('HINCRBY', P .. 'stats', 'parked', 1)
      redis.call('HINCRBY', P .. 'stats', 'pev', counted)
    end
    become_slow(item.id, now)
  elseif op == 'renew' then
    if st == 'recorded' then return 0 end
    local expiry = now + cfg.claim_ttl
    redis.call('HSET', key, 'cexp', expiry)
    if st == 'sent' then
      redis.call('ZADD', P .. 'polls', expiry, item.id)
    else
      redis.call('ZADD', P .. 'claims', expiry, item.id)
    end
  elseif op == 'repoll' then
    if st ~= 'sent' then return 0 end
    redis.call('HINCRBY', key, 'pn', 1)
    redis.call('HSET', key, 'cexp', 0, 'upd', now, 'err', item.err or '')
    if item.stale and h[3] ~= '1' then
      redis.call('HSET', key, 'stale', 1)
      redis.call('HINCRBY', P .. 'stats', 'stale', 1)
      become_slow(item.id, now)
    end
    redis.call('ZADD', P .. 'polls', item.at, item.id)
    if h[4] then
      redis.call('HSET', P .. 'task:' .. h[4], 'status', item.status or '', 'upd', now,
                 'stale', item.stale and 1 or 0)
      redis.call('HINCRBY', P .. 'task:' .. h[4], 'polls', 1)
    end
  else
    return redis.error_reply('mark.lua: unknown op ' .. tostring(op))
  end
  return 1
end

for _, item in ipairs(as_list(cfg.items)) do
  local result = apply(item)
  if type(result) == 'table' then return result end
  out[#out + 1] = result
end
return out
