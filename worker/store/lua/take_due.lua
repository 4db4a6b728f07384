-- take_due.lua: hand out what is due, so that any number of tickers never dispatch one item twice.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {now, lease (ms), lease_cap (ms), due: n, polls: n, claims: n}: how many of each
-- Returns  [JSON {due: [groups], polls: [bundle ids], claims: [bundle ids]}]
--
-- Each entry whose score is at most `now` is re-scored to now + a lease, never removed: a message
-- that is lost, or a worker that dies on it, only delays it by the lease. The flush, the poll or
-- the recovery sets the real next score (or removes the entry) when it is done.
--
-- The hand-out is remembered beside the entry (the score it was given and how many times in a
-- row it was handed out): in the record (`lc` for `claims`, `lp` for `polls`) or, for the
-- planning entry, in `dlease`. claim.lua takes an entry whose score is still the one handed out
-- as due (the ticker moved it, nobody else did) and forgets the hand-out. An entry that comes due
-- again with its score unchanged was handed out and never handled (its message is lost, or still
-- queued behind others): it is handed out again, with twice the previous lease, up to lease_cap,
-- so a backed-up queue does not fill with copies while a lost message is still sent again.

local cfg = cjson.decode(ARGV[1])
local now = cfg.now
local cap = math.max(cfg.lease, cfg.lease_cap or cfg.lease)

-- The previous hand-out of an entry now scored `score`: how many in a row (-1: none).
local function previous(text, score)
  if not text then return -1 end
  local at, n = string.match(text, '^(%d+)/(%d+)$')
  if tonumber(at) ~= score then return -1 end
  return tonumber(n)
end

local function lease_for(repeats)
  local lease = cfg.lease
  for _ = 1, repeats do
    lease = lease * 2
    if lease >= cap then return cap end
  end
  return lease
end

local function take(name, limit, field)
  if not limit or limit <= 0 then return {} end
  local zkey = P .. name
  local rows = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
  local ids = {}
  local rehanded = 0
  for i = 1, #rows, 2 do
    local id, score = rows[i], tonumber(rows[i + 1])
    local record = field and P .. 'bd:' .. id
    local marker
    if record then
      local h = redis.call('HMGET', record, 'st', field)
      if not h[1] then record = nil end  -- no record: nothing to remember (claim drops it)
      marker = h[2]
    else
      marker = redis.call('GET', P .. 'dlease')
    end
    local repeats = previous(marker, score) + 1
    local later = now + lease_for(repeats)
    redis.call('ZADD', zkey, later, id)
    local text = string.format('%d/%d', later, repeats)
    if record then
      redis.call('HSET', record, field, text)
    elseif not field then
      redis.call('SET', P .. 'dlease', text, 'PX', 2 * cap)
    end
    if repeats > 0 then rehanded = rehanded + 1 end
    ids[#ids + 1] = id
  end
  if rehanded > 0 then redis.call('HINCRBY', P .. 'stats', 'rehanded', rehanded) end
  return ids
end

local taken = {due = take('due', cfg.due, nil), polls = take('polls', cfg.polls, 'lp'),
               claims = take('claims', cfg.claims, 'lc')}
return {cjson.encode(taken)}
