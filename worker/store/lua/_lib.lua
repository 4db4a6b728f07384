-- _lib.lua: helpers shared by every script; worker/store/scripts.py prepends this file to each.
--
-- KEYS[1]  the source prefix "ingest:{sk}:" (every key below starts with it: one cluster slot)
-- Key suffixes mirror worker/store/keys.py.
--
-- Event hash fields (ev:<eventId>):
--   h     the resolved event's JSON without data and contained
--   d     the JSON object of its data and contained ('{}': neither); the event is join(h, d)
--                                                 st    pending|in_flight|applied|coalesced|dead_lettered
--   seq   publish sequence                        g     group it named (a packing preference)
--   bk    1: published in bulk mode               k     entity key
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

-- The event's JSON from its two stored parts (see h and d above).
local function stored_body(head, content)
  if not head then return nil end
  if not content or content == '{}' then return head end
  return string.sub(head, 1, -2) .. ',' .. string.sub(content, 2)
end

local function as_list(value)
  -- cjson decodes [] and {} alike; both mean "nothing"
  if type(value) ~= 'table' then return {} end
  return value
end

-- The ready log: events waiting to be planned, scored by publish seq (sent-back events go back
-- under their own seq, so they stay ahead of later events on their entities).
local function ready_add(eid, seq, bytes, now)
  if redis.call('ZADD', P .. 'ready', seq, eid) == 0 then return false end
  redis.call('HINCRBY', P .. 'stats', 'buffered', 1)
  redis.call('HINCRBY', P .. 'stats', 'rbytes', bytes)
  redis.call('HSETNX', P .. 'stats', 'rfirst', now)
  return true
end

-- Out of the ready log (planned, or dead-lettered before any bundle); false when it was not there.
local function ready_remove(eid, bytes)
  if redis.call('ZREM', P .. 'ready', eid) == 0 then return false end
  redis.call('HINCRBY', P .. 'stats', 'buffered', -1)
  redis.call('HINCRBY', P .. 'stats', 'rbytes', -bytes)
  return true
end

-- When the source's next planning round is due: never while the ready log is empty; at once when
-- `urgent` (events left by a cut read, or sent back); else linger from now, never past the oldest
-- ready event's publish time + max age. An earlier due time is never postponed.
local function plan_due(now, linger, max_age, urgent)
  local head = redis.call('ZRANGE', P .. 'ready', 0, 0)
  if #head == 0 then
    redis.call('ZREM', P .. 'due', '*')
    redis.call('HDEL', P .. 'stats', 'rfirst')
    redis.call('HSET', P .. 'stats', 'rbytes', 0)
    return
  end
  local at = now
  if not urgent then
    local first = tonumber(redis.call('HGET', P .. 'ev:' .. head[1], 'pub')) or now
    redis.call('HSET', P .. 'stats', 'rfirst', first)
    at = math.min(now + linger, first + max_age)
  end
  local current = tonumber(redis.call('ZSCORE', P .. 'due', '*') or '')
  if current and current <= at then return end
  redis.call('ZADD', P .. 'due', at, '*')
end

-- Holds: `hx` key -> the last unfinished bundle that writes it; `hs:<key>` the unfinished bundles
-- that read it (a relationship's end) since; `hsn` key -> how many. A bundle's predecessors are
-- the holders it conflicts with (a write conflicts with both kinds, a read with the writer).
local function holders_of(x_keys, s_keys, self_id, into)
  for _, k in ipairs(x_keys) do
    local w = redis.call('HGET', P .. 'hx', k)
    if w and w ~= self_id then into[w] = true end
    if redis.call('HEXISTS', P .. 'hsn', k) == 1 then
      for _, r in ipairs(redis.call('SMEMBERS', P .. 'hs:' .. k)) do
        if r ~= self_id then into[r] = true end
      end
    end
  end
  for _, k in ipairs(s_keys) do
    local w = redis.call('HGET', P .. 'hx', k)
    if w and w ~= self_id then into[w] = true end
  end
  return into
end

local function hold(bid, x_keys, s_keys)
  for _, k in ipairs(x_keys) do
    redis.call('HSET', P .. 'hx', k, bid)
    if redis.call('HDEL', P .. 'hsn', k) == 1 then redis.call('DEL', P .. 'hs:' .. k) end
  end
  for _, k in ipairs(s_keys) do
    if redis.call('SADD', P .. 'hs:' .. k, bid) == 1 then
      redis.call('HINCRBY', P .. 'hsn', k, 1)
    end
  end
end

local function drop_readers(bid, s_keys)
  for _, k in ipairs(s_keys) do
    if redis.call('SREM', P .. 'hs:' .. k, bid) == 1 then
      if redis.call('HINCRBY', P .. 'hsn', k, -1) <= 0 then redis.call('HDEL', P .. 'hsn', k) end
    end
  end
end

local function unhold(bid, x_keys, s_keys)
  for _, k in ipairs(x_keys) do
    if redis.call('HGET', P .. 'hx', k) == bid then redis.call('HDEL', P .. 'hx', k) end
  end
  drop_readers(bid, s_keys)
end

local function conflicts(x_keys, s_keys, written, read)
  for _, k in ipairs(x_keys) do
    if written[k] or read[k] then return true end
  end
  for _, k in ipairs(s_keys) do
    if written[k] then return true end
  end
  return false
end

-- Send-backs: a key whose events went back to the ready log is stamped with a new epoch, so a
-- planner that read before it cannot commit a bundle on that key (commit.lua).
local function stamp_sent_back(written, read)
  local epoch = redis.call('INCR', P .. 'sbepoch')
  for k in pairs(written) do redis.call('HSET', P .. 'sbk', k, epoch) end
  for k in pairs(read) do redis.call('HSET', P .. 'sbk', k, epoch) end
end

local function decoded(text) return as_list(cjson.decode(text or '[]')) end

local function as_set(list)
  local set = {}
  for _, v in ipairs(list) do set[v] = true end
  return set
end

-- A dissolved bundle's holds go back to the predecessors it took them over from (those still
-- unfinished), so nothing later on its entities overtakes them.
local function restore_holds(bid, x_keys, s_keys, preds)
  local writers, readers = {}, {}
  for _, p in ipairs(preds) do
    local h = redis.call('HMGET', P .. 'bd:' .. p, 'st', 'x', 's')
    if h[1] and h[1] ~= 'recorded' then
      writers[p] = as_set(decoded(h[2]))
      readers[p] = as_set(decoded(h[3]))
    end
  end
  for _, k in ipairs(x_keys) do
    if redis.call('HGET', P .. 'hx', k) == bid then
      redis.call('HDEL', P .. 'hx', k)
      for p, keys in pairs(writers) do
        if keys[k] then redis.call('HSET', P .. 'hx', k, p) end
      end
      for p, keys in pairs(readers) do
        if keys[k] and redis.call('SADD', P .. 'hs:' .. k, p) == 1 then
          redis.call('HINCRBY', P .. 'hsn', k, 1)
        end
      end
    end
  end
  drop_readers(bid, s_keys)
end

-- Dissolve waiting bundles: the seeds, and every waiting bundle that follows a dissolved one.
-- Each goes back into the ready log (its events under their seqs, never sent), latest first, so
-- each one's holds return to predecessors that still exist. Their keys join written/read (to be
-- stamped). Returns how many events went back.
local function dissolve(seeds, written, read, now)
  local chosen, order = {}, {}
  local frontier = seeds
  while #frontier > 0 do
    local d = table.remove(frontier)
    if not chosen[d] then
      local h = redis.call('HMGET', P .. 'bd:' .. d, 'st', 'x', 's', 'ev', 'cseq', 'pre')
      if h[1] == 'waiting' then
        chosen[d] = {x = decoded(h[2]), s = decoded(h[3]), ev = decoded(h[4]),
                     cseq = tonumber(h[5]) or 0, pre = decoded(h[6])}
        order[#order + 1] = d
        for _, f in ipairs(redis.call('SMEMBERS', P .. 'dep:' .. d)) do
          frontier[#frontier + 1] = f
        end
      end
    end
  end
  table.sort(order, function(a, b) return chosen[a].cseq > chosen[b].cseq end)
  local moved = 0
  for _, d in ipairs(order) do
    local info = chosen[d]
    for _, k in ipairs(info.x) do written[k] = true end
    for _, k in ipairs(info.s) do read[k] = true end
    local n = 0
    for _, eid in ipairs(info.ev) do
      local ekey = P .. 'ev:' .. eid
      local e = redis.call('HMGET', ekey, 'st', 'bd', 'seq', 'b')
      if e[1] == 'in_flight' and e[2] == d then
        redis.call('HSET', ekey, 'st', 'pending', 'bd', '', 'upd', now)
        ready_add(eid, tonumber(e[3]), tonumber(e[4]) or 0, now)
        n = n + 1
      end
    end
    restore_holds(d, info.x, info.s, info.pre)
    redis.call('DEL', P .. 'bd:' .. d, P .. 'dep:' .. d)
    redis.call('HINCRBY', P .. 'stats', 'inflight', -n)
    redis.call('HINCRBY', P .. 'stats', 'bundles', -1)
    redis.call('HINCRBY', P .. 'stats', 'dissolved', 1)
    moved = moved + n
  end
  return moved
end

-- A recorded bundle leaves the scheduler: its holds go (everything it took over was finished
-- before it was sent), each waiting follower that touches an entity whose events went back
-- (`written`/`read`) is dissolved with everything that follows it, and every other follower
-- loses a predecessor (ready to send once it has none left). Returns the followers that became
-- ready, and how many events dissolving sent back.
local function release(bid, x_keys, s_keys, written, read, now)
  unhold(bid, x_keys, s_keys)
  local dkey = P .. 'dep:' .. bid
  local followers = redis.call('SMEMBERS', dkey)
  redis.call('DEL', dkey)
  table.sort(followers)
  local seeds, keep = {}, {}
  for _, d in ipairs(followers) do
    local h = redis.call('HMGET', P .. 'bd:' .. d, 'st', 'x', 's')
    if h[1] == 'waiting' then
      if next(written) == nil and next(read) == nil then
        keep[#keep + 1] = d
      elseif conflicts(decoded(h[2]), decoded(h[3]), written, read) then
        seeds[#seeds + 1] = d
      else
        keep[#keep + 1] = d
      end
    end
  end
  local moved = dissolve(seeds, written, read, now)
  local ready_ids = {}
  for _, d in ipairs(keep) do
    local key = P .. 'bd:' .. d
    if redis.call('HGET', key, 'st') == 'waiting' and redis.call('HINCRBY', key, 'np', -1) <= 0 then
      redis.call('HSET', key, 'st', 'planned', 'np', 0, 'upd', now)
      redis.call('ZADD', P .. 'claims', now, d)
      ready_ids[#ready_ids + 1] = d
    end
  end
  return ready_ids, moved
end

-- Slow holders. A bundle that turns STALE or is parked may hold its entities for days; it must
-- delay only what follows it. So its waiting followers are dissolved at once (an unrelated event
-- packed with a follower goes back to the log and is planned afresh), its keys are listed in
-- `slowk` (key -> x|s:<bundle>), and planning blocks what touches them: such events leave the
-- log for `blk:<bundle>` (seq order) and hold their keys virtually (`hvn` key -> count, `hvb:<key>`
-- bundle -> count, `hvs:<key>` bundle -> the lowest seq it blocked there), so the events after
-- them on those keys are blocked too (an event sent back with a lower seq is not). When the slow bundle is
-- recorded, its blocked events go back to the log.
local function become_slow(bid, now)
  local key = P .. 'bd:' .. bid
  local h = redis.call('HMGET', key, 'slow', 'x', 's', 'st')
  if h[1] == '1' or not h[4] or h[4] == 'recorded' then return end
  redis.call('HSET', key, 'slow', 1)
  local x_keys, s_keys = decoded(h[2]), decoded(h[3])
  for _, k in ipairs(x_keys) do redis.call('HSET', P .. 'slowk', k, 'x:' .. bid) end
  for _, k in ipairs(s_keys) do redis.call('HSETNX', P .. 'slowk', k, 's:' .. bid) end
  local written, read = {}, {}
  local moved = dissolve(redis.call('SMEMBERS', P .. 'dep:' .. bid), written, read, now)
  redis.call('DEL', P .. 'dep:' .. bid)
  if moved > 0 then
    redis.call('HINCRBY', P .. 'stats', 'requeued', moved)
    stamp_sent_back(written, read)
    redis.call('ZADD', P .. 'due', now, '*')
  end
end

local function event_keys(k, tr)
  local keys = {k}
  for _, r in ipairs(split(tr)) do
    if r ~= k then keys[#keys + 1] = r end
  end
  return keys
end

-- Block a ready event behind a slow bundle; false when it is no longer in the log.
local function block(eid, bid, now)
  local ekey = P .. 'ev:' .. eid
  local e = redis.call('HMGET', ekey, 'st', 'seq', 'b', 'k', 'tr')
  if e[1] ~= 'pending' or not ready_remove(eid, tonumber(e[3]) or 0) then return false end
  local seq = tonumber(e[2])
  redis.call('ZADD', P .. 'blk:' .. bid, seq, eid)
  redis.call('HSET', ekey, 'blk', bid, 'upd', now)
  for _, k in ipairs(event_keys(e[4], e[5])) do
    redis.call('HINCRBY', P .. 'hvn', k, 1)
    redis.call('HINCRBY', P .. 'hvb:' .. k, bid, 1)
    local first = tonumber(redis.call('HGET', P .. 'hvs:' .. k, bid))
    if not first or seq < first then redis.call('HSET', P .. 'hvs:' .. k, bid, seq) end
  end
  redis.call('HINCRBY', P .. 'stats', 'blocked', 1)
  return true
end

-- A slow bundle is recorded: what it blocked goes back to the log, its keys leave `slowk`.
local function unblock(bid, x_keys, s_keys, now)
  for _, k in ipairs(x_keys) do
    if redis.call('HGET', P .. 'slowk', k) == 'x:' .. bid then redis.call('HDEL', P .. 'slowk', k) end
  end
  for _, k in ipairs(s_keys) do
    if redis.call('HGET', P .. 'slowk', k) == 's:' .. bid then redis.call('HDEL', P .. 'slowk', k) end
  end
  local bkey = P .. 'blk:' .. bid
  local items = redis.call('ZRANGE', bkey, 0, -1, 'WITHSCORES')
  local n = 0
  for j = 1, #items, 2 do
    local eid = items[j]
    local ekey = P .. 'ev:' .. eid
    local e = redis.call('HMGET', ekey, 'st', 'b', 'k', 'tr', 'blk')
    for _, k in ipairs(event_keys(e[3], e[4])) do
      if redis.call('HINCRBY', P .. 'hvn', k, -1) <= 0 then redis.call('HDEL', P .. 'hvn', k) end
      if redis.call('HINCRBY', P .. 'hvb:' .. k, bid, -1) <= 0 then
        redis.call('HDEL', P .. 'hvb:' .. k, bid)
        redis.call('HDEL', P .. 'hvs:' .. k, bid)
      end
    end
    if e[1] == 'pending' and e[5] == bid then
      redis.call('HDEL', ekey, 'blk')
      ready_add(eid, tonumber(items[j + 1]), tonumber(e[2]) or 0, now)
      n = n + 1
    end
  end
  redis.call('DEL', bkey)
  if n > 0 then
    redis.call('HINCRBY', P .. 'stats', 'blocked', -n)
    redis.call('HINCRBY', P .. 'stats', 'requeued', n)
    redis.call('ZADD', P .. 'due', now, '*')
  end
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
