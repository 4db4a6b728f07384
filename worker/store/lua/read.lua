-- read.lua: take the source's planning lease and read the head of its ready log.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {token, lease (ms), limit: events at most, max_bytes: event bytes at most,
--                chunk: events at most in this call,
--                after?: continue a round: the seq of the last event its earlier calls read,
--                read?, bytes?: what they read, bulk?: the kind of request they read}
-- Returns  [meta JSON, events JSON, contents]; events is one JSON array of
--          [eventId, seq, head (the stored JSON without data and contained, embedded as is),
--          nm (0|1), k, tr, ab, g, bytes] in seq order, and contents is each event's stored data
--          and contained (compact JSON, never decoded by the planner) in the same order, joined
--          by the record separator (byte 30); meta = {busy?: true (another planner holds the
--          lease: nothing read),
--          epoch: the send-back epoch now, bulk: whether these events travel in bulk requests,
--          more: whether the ready log holds events past these, seq: the source's sequence,
--          shrink: the source's bundle-size state (`shrink`) or false,
--          slow?: {key: 'x:<bundle>'|'s:<bundle>'} keys read that a slow bundle holds,
--          virtual?: {key: [[bundle, lowest seq], ...]} keys read that events blocked behind a
--                    slow bundle touch, with the lowest seq blocked there per slow bundle,
--          after_delete?: [entity keys read whose last planned operation is a DELETE],
--          chunk?: true when this call stopped at `chunk` events and the round may read on}
--
-- One planner per source at a time: the lease (`plock`, the caller's token, expiring after
-- `lease` ms) is taken here and checked and released by commit.lua; a planner that lost it
-- commits nothing. The read is a prefix of the log in seq order, cut at the limits (an atomic
-- batch is never cut: it is read whole or left for the next round) and at the first event of
-- the other mode (bulk or bundle), so one round plans one kind of request. Its cost does not
-- depend on how many groups or events reference one resource: one HMGET per event read. A round
-- reads in calls of at most `chunk` events (each call ends between atomic batches), so no call
-- holds Redis for long: the first takes the lease, the next ones (`after`) check and extend it.

local cfg = cjson.decode(ARGV[1])
local going_on = cfg.after ~= nil
if going_on then
  if redis.call('GET', P .. 'plock') ~= cfg.token then return {cjson.encode({busy = true}), '[]'} end
  redis.call('PEXPIRE', P .. 'plock', cfg.lease)
elseif not redis.call('SET', P .. 'plock', cfg.token, 'NX', 'PX', cfg.lease) then
  return {cjson.encode({busy = true}), '[]'}
end

local meta = {epoch = tonumber(redis.call('GET', P .. 'sbepoch') or '0'),
              seq = tonumber(redis.call('GET', P .. 'seq') or '0'),
              shrink = redis.call('GET', P .. 'shrink'), more = false, bulk = false}
-- send-backs before this round's first read are all in the log now: only later ones can stop
-- a commit
if not going_on then redis.call('DEL', P .. 'sbk') end
local before, before_bytes = tonumber(cfg.read) or 0, tonumber(cfg.bytes) or 0
local chunk = tonumber(cfg.chunk) or cfg.limit

local parts = {}
local rowkeys = {} -- per part: the event's entity key and touched resources
local contents = {} -- per part: the event's stored data and contained, returned as they are
local bytes, count = 0, 0
local mode = nil
if going_on then mode = cfg.bulk == 1; meta.bulk = mode end
local batch, batch_start_parts, batch_start_bytes = nil, 0, 0
local window = math.max(math.min(chunk, cfg.limit - before) + 16, 64)
local offset = 0
local stop = false
local from = going_on and ('(' .. cfg.after) or '-inf'
while not stop do
  local items = redis.call('ZRANGE', P .. 'ready', from, '+inf', 'BYSCORE', 'LIMIT', offset, window,
                           'WITHSCORES')
  if #items == 0 then break end
  for j = 1, #items, 2 do
    local eid = items[j]
    local h = redis.call('HMGET', P .. 'ev:' .. eid, 'h', 'nm', 'k', 'tr', 'ab', 'g', 'bk', 'b', 'd')
    local size = tonumber(h[8]) or 0
    local ab = h[5] or false
    local bulk = h[7] == '1' and not ab
    if mode == nil then mode = bulk; meta.bulk = bulk end
    local inside = ab and ab == batch -- within an atomic batch already read in part
    if ab ~= batch then
      batch = ab
      batch_start_parts, batch_start_bytes = #parts, bytes
    end
    local total = before + count
    local full = total > 0 and (total >= cfg.limit or before_bytes + bytes + size > cfg.max_bytes)
    if bulk ~= mode or (full and not ab) then
      meta.more = true
      stop = true
      break
    end
    if count >= chunk and not inside then
      meta.chunk = true -- the round may read on, from here, in another call
      stop = true
      break
    end
    if full and ab and before + batch_start_parts > 0 then
      -- the batch does not fit after what was read: leave it whole for the next round
      for k = #parts, batch_start_parts + 1, -1 do
        parts[k] = nil; rowkeys[k] = nil; contents[k] = nil
      end
      count = batch_start_parts
      bytes = batch_start_bytes
      meta.more = true
      stop = true
      break
    end
    -- ids, keys, groups and batch ids are labels of a few ASCII characters, never a quote or a
    -- backslash (LABEL_PATTERN, the id patterns), so they are quoted without cjson
    parts[#parts + 1] = '["' .. eid .. '",' .. items[j + 1] .. ',' .. (h[1] or 'null') .. ',' ..
      (h[2] == '1' and '1' or '0') .. ',"' .. (h[3] or '') .. '","' .. (h[4] or '') .. '",' ..
      (ab and ('"' .. ab .. '"') or 'false') .. ',"' .. (h[6] or '') .. '",' .. size .. ']'
    rowkeys[#parts] = {h[3] or '', h[4]}
    contents[#parts] = h[9] or '{}'
    count = count + 1
    bytes = bytes + size
  end
  offset = offset + window
end
count = #parts

-- every key read: the events' own and the resources they reference (a relationship's ends)
local keys, seen = {}, {}
for _, row in ipairs(rowkeys) do
  for _, k in ipairs({row[1], unpack(split(row[2]))}) do
    if not seen[k] then seen[k] = true; keys[#keys + 1] = k end
  end
end

-- the keys read that an unfinished bundle writes, with its operation's action: planning does
-- not merge an UPSERT+ DELETE after a DELETE still unsent (it would be refused NOT_FOUND), and
-- foresight takes a held key as that operation leaves it (`?<action>`: one expected to fail,
-- which leaves it as it was; `UPSERT+`: an UPSERT behind an unfinished DELETE or CREATE)
if count > 0 and redis.call('HLEN', P .. 'la') > 0 then
  local deleted, listed, held = {}, {}, {}
  local actions = hmget_all(P .. 'la', keys)
  for j, k in ipairs(keys) do
    local action = actions[j]
    if action and string.sub(action, 1, 7) == 'UPSERT+' then
      -- behind a DELETE or CREATE: `UPSERT+` while that bundle is unfinished
      local st = redis.call('HGET', P .. 'bd:' .. string.sub(action, 8), 'st')
      action = (st and st ~= 'recorded') and 'UPSERT+' or 'UPSERT'
    end
    if action then held[k] = action end
  end
  for _, row in ipairs(rowkeys) do
    local action = held[row[1]]
    if (action == 'DELETE' or action == '?DELETE') and not listed[row[1]] then
      listed[row[1]] = true
      deleted[#deleted + 1] = row[1]
    end
  end
  if #deleted > 0 then meta.after_delete = deleted end
  if cfg.foresee and next(held) ~= nil then meta.held = held end
end

-- what the source's answers said of the keys read, and how far each kind of expectation held
-- (`worker/domain/foresight.py`)
if count > 0 and cfg.foresee then
  if not going_on then
    meta.fc = redis.call('HMGET', P .. 'refusals', 'kh', 'km', 'gh', 'gm', 'every')
  end
  if redis.call('EXISTS', P .. 'known') == 1 then
    local known, any = {}, false
    local values = hmget_all(P .. 'known', keys)
    for j, k in ipairs(keys) do
      if values[j] then known[k] = values[j]; any = true end
    end
    if any then meta.known = known end
  end
end

-- which of the keys read are held by a slow bundle (STALE, parked) or by events blocked behind
-- one: planning blocks what touches them (see `become_slow` in _lib.lua). Two HMGETs per 1,000 keys.
if count > 0 and (redis.call('HLEN', P .. 'slowk') > 0 or redis.call('HLEN', P .. 'hvn') > 0) then
  local slow, virtual = {}, {}
  local held = hmget_all(P .. 'slowk', keys)
  local counts = hmget_all(P .. 'hvn', keys)
  for j, k in ipairs(keys) do
    if held[j] then slow[k] = held[j] end
    if tonumber(counts[j] or '0') > 0 then
      local firsts = redis.call('HGETALL', P .. 'hvs:' .. k)
      local live = {}
      for f = 1, #firsts, 2 do
        if bundle_alive(firsts[f]) then live[#live + 1] = {firsts[f], tonumber(firsts[f + 1])} end
      end
      if #live > 0 then virtual[k] = live end
    end
  end
  meta.slow = slow
  meta.virtual = virtual
end
redis.call('HINCRBY', P .. 'stats', 'read', count)
if count == 0 and before == 0 then redis.call('DEL', P .. 'plock') end
-- the contents joined by the ASCII record separator, which JSON text never holds raw: one reply
-- string, where one string per event cost the client a reply element to parse per event
return {cjson.encode(meta), '[' .. table.concat(parts, ',') .. ']', table.concat(contents, '\30')}
