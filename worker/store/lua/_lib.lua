-- _lib.lua: helpers shared by every script; worker/store/scripts.py prepends this file to each.
--
-- KEYS[1]  the source prefix "ingest:{sk}:" (every key below starts with it: one cluster slot)
-- Key suffixes mirror worker/store/keys.py.
--
-- Event hash fields (ev:<eventId>):
--   body  compact JSON of the resolved event     st    pending|in_flight|applied|coalesced|dead_lettered
--   seq   publish sequence                        g     group whose buffer holds (or held) it
--   ng    group it named                          k     entity key
--   tr    resources it touches, space-separated   b     bytes of body
--   ab    atomic batch id                         aid   id assigned at publish (id-less CREATE)
--   rd    ref it defines                          nm    1: never merge again (unmerged)
--   att   submissions so far                      pub / upd / fin   times (ms)
--   bd    bundle carrying it                      task  task id
--   fate  last fate                               err   error (JSON)   reason   why   bound   cause
--   stage where it was dead-lettered (publish|flush|record)
--   amb   1: sent again after a read-back (its first request may have landed late)

local P = KEYS[1]

local function split(text)
  local out = {}
  if text then
    for word in string.gmatch(text, '%S+') do out[#out + 1] = word end
  end
  return out
end

local function as_list(value)
  -- cjson decodes [] and {} alike; both mean "nothing"
  if type(value) ~= 'table' then return {} end
  return value
end

local function buffer_add(eid, group, seq, entity, resources, bytes, now)
  redis.call('ZADD', P .. 'buf:' .. group, seq, eid)
  redis.call('HSET', P .. 'where', entity, group)
  redis.call('HINCRBY', P .. 'wn', entity, 1)
  for _, r in ipairs(resources) do
    redis.call('HINCRBY', P .. 'touch:' .. r, group, 1)
  end
  redis.call('HINCRBY', P .. 'gstat', 'n|' .. group, 1)
  redis.call('HINCRBY', P .. 'gstat', 'b|' .. group, bytes)
  redis.call('HSETNX', P .. 'gstat', 't|' .. group, now)
  redis.call('HINCRBY', P .. 'stats', 'buffered', 1)
end

local function buffer_remove(eid, group, entity, resources, bytes)
  if redis.call('ZREM', P .. 'buf:' .. group, eid) == 0 then return false end
  if redis.call('HINCRBY', P .. 'wn', entity, -1) <= 0 then
    redis.call('HDEL', P .. 'wn', entity)
    redis.call('HDEL', P .. 'where', entity)
  end
  for _, r in ipairs(resources) do
    if redis.call('HINCRBY', P .. 'touch:' .. r, group, -1) <= 0 then
      redis.call('HDEL', P .. 'touch:' .. r, group)
    end
  end
  local left = redis.call('HINCRBY', P .. 'gstat', 'n|' .. group, -1)
  redis.call('HINCRBY', P .. 'gstat', 'b|' .. group, -bytes)
  if left <= 0 then
    redis.call('HDEL', P .. 'gstat', 'n|' .. group, 'b|' .. group, 't|' .. group)
  end
  redis.call('HINCRBY', P .. 'stats', 'buffered', -1)
  return true
end

local function bundle_alive(bid)
  local state = redis.call('HGET', P .. 'bd:' .. bid, 'st')
  return state and state ~= 'recorded'
end

-- An event refused at publish gets a small record of that (the dead letter holds the rest), so
-- its status says so; never over an event that is known otherwise (a live or finished one).
local function mark_refused(eid, err, now, ttl)
  local key = P .. 'ev:' .. eid
  local h = redis.call('HMGET', key, 'st', 'stage')
  if h[1] and not (h[1] == 'dead_lettered' and h[2] == 'publish') then return end
  redis.call('DEL', key)
  redis.call('HSET', key, 'st', 'dead_lettered', 'stage', 'publish', 'fate', 'FAILED',
             'err', err or '', 'reason', 'refused at publish', 'pub', now, 'upd', now, 'fin', now)
  redis.call('EXPIRE', key, ttl)
end

-- A dead letter: every field a replay needs, never a credential.
local function dead_letter(eid, stage, err, body, now, extra)
  local fields = {'eventId', eid, 'stage', stage, 'error', err or '', 'event', body or '',
                  'failedAt', tostring(now)}
  for name, value in pairs(extra or {}) do
    if value then
      fields[#fields + 1] = name
      fields[#fields + 1] = tostring(value)
    end
  end
  redis.call('XADD', P .. 'dlq', '*', unpack(fields))
end
