-- take_due.lua: hand out what is due, so that any number of tickers never dispatch one item twice.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {now, lease (ms), due: n, polls: n, claims: n}: how many of each to take
-- Returns  [JSON {due: [groups], polls: [bundle ids], claims: [bundle ids]}]
--
-- Each entry whose score is at most `now` is re-scored to now + lease, never removed: a message
-- that is lost, or a worker that dies on it, only delays it by the lease. The flush, the poll or
-- the recovery sets the real next score (or removes the entry) when it is done.

local cfg = cjson.decode(ARGV[1])
local now = cfg.now
local later = now + cfg.lease

local function take(name, limit)
  if not limit or limit <= 0 then return {} end
  local zkey = P .. name
  local ids = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do redis.call('ZADD', zkey, later, id) end
  return ids
end

local taken = {due = take('due', cfg.due), polls = take('polls', cfg.polls),
               claims = take('claims', cfg.claims)}
return {cjson.encode(taken)}
