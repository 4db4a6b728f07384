-- commit.lua: write a planning round's bundles into the scheduler, in plan order, and release
-- the planning lease.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {token, epoch (from read.lua), now, claim_ttl, ttl (s), linger, max_age,
--                more: the read left events in the log,
--                bundles: [{id, ev: [eventIds], bytes: their stored bytes, x: [entity keys
--                           written], s: [entity keys only referenced], pre: [ids of earlier
--                           bundles of this plan it follows],
--                           layout: JSON string, groups: [groups its events name],
--                           acts: {entity key: action of its operation there},
--                           claim: 1 when the caller sends it itself if it is ready}],
--                rejects: [{e, err: JSON string}],
--                blocked: [{e, bid}]: events behind a slow bundle (see `block` in _lib.lua),
--                aborted: [ids of bundles of this plan aborted by earlier calls],
--                final: false when more calls of this round follow (the lease is kept; rejects,
--                       blocked events and the next due time go with the last call)}
-- Returns  'lost' when the lease is not the caller's (nothing written); else three strings per
--          bundle: id, 'ready' (claimed by the caller when it asked, fence 1; else due for the
--          ticker) | 'waiting' (for its predecessors) | 'aborted' (its events stay in the
--          ready log), fence ('1' or '0')
--
-- A bundle follows every unfinished bundle it conflicts with: its predecessors in this plan and
-- the holders of its keys now (hx, hs: see _lib.lua), and it becomes their holder. Taking it is
-- all or nothing: its events leave the ready log, the record is written `planned` (no
-- predecessor left) or `waiting` (np predecessors; each lists it in `dep:`), and its holds are
-- set. A bundle is aborted when an event is no longer in the ready log, or when one of its keys
-- had events sent back to the log since the read (they must go first), and so is every bundle
-- of the plan that follows an aborted one. Rejected events (no bundle can carry them) are
-- dead-lettered, and blocked events move to their slow bundle's list (left in the log if it is no
-- longer slow). Then the source is due again: at once when the read was cut, a bundle was aborted
-- or a blocked event left, else as its remaining events' linger and max age say. A round commits
-- in several calls of whole bundles (`flush_chunk` events), so no call holds Redis for long.

local cfg = cjson.decode(ARGV[1])
local now = cfg.now
if redis.call('GET', P .. 'plock') ~= cfg.token then return 'lost' end

local out = {}
local aborted = {}
for _, a in ipairs(as_list(cfg.aborted)) do aborted[a] = true end
local stamped = tonumber(redis.call('GET', P .. 'sbepoch') or '0') ~= tonumber(cfg.epoch)
local committed = 0

local function sent_back_since(b)
  if not stamped then return false end
  for _, k in ipairs(as_list(b.x)) do
    if redis.call('HEXISTS', P .. 'sbk', k) == 1 then return true end
  end
  for _, k in ipairs(as_list(b.s)) do
    if redis.call('HEXISTS', P .. 'sbk', k) == 1 then return true end
  end
  return false
end

for _, b in ipairs(as_list(cfg.bundles)) do
  local ok = true
  for _, p in ipairs(as_list(b.pre)) do
    if aborted[p] then ok = false end
  end
  local evs = as_list(b.ev)
  if ok and #evs > 0 then
    -- every event still in the ready log (so still pending): one ZMSCORE per bundle
    for _, score in ipairs(redis.call('ZMSCORE', P .. 'ready', unpack(evs))) do
      if not score then ok = false; break end
    end
  end
  if ok and sent_back_since(b) then ok = false end
  if not ok then
    aborted[b.id] = true
    out[#out + 1] = b.id; out[#out + 1] = 'aborted'; out[#out + 1] = '0'
  else
    local x_keys, s_keys = as_list(b.x), as_list(b.s)
    local preds = holders_of(x_keys, s_keys, b.id, {})
    for _, p in ipairs(as_list(b.pre)) do preds[p] = true end
    local np, pre = 0, {}
    for p in pairs(preds) do
      local st = redis.call('HGET', P .. 'bd:' .. p, 'st')
      if st and st ~= 'recorded' then
        redis.call('SADD', P .. 'dep:' .. p, b.id)
        np = np + 1
        pre[#pre + 1] = p
      end
    end
    table.sort(pre)
    set_actions(as_list(b.acts))
    hold(b.id, x_keys, s_keys)
    redis.call('ZREM', P .. 'ready', unpack(evs))
    redis.call('HINCRBY', P .. 'stats', 'buffered', -#evs)
    local bytes = tonumber(b.bytes) or 0
    if bytes > 0 then redis.call('HINCRBY', P .. 'stats', 'rbytes', 0 - bytes) end
    for _, eid in ipairs(evs) do
      redis.call('HSET', P .. 'ev:' .. eid, 'st', 'in_flight', 'bd', b.id, 'upd', now)
    end
    local fence, cexp = 0, 0
    if np == 0 then
      if b.claim == 1 then
        fence, cexp = 1, now + cfg.claim_ttl
        redis.call('ZADD', P .. 'claims', cexp, b.id)
      else
        redis.call('ZADD', P .. 'claims', now, b.id)
      end
    end
    write_bundle(b, pre, redis.call('INCR', P .. 'cseq'), 1, fence, cexp, now)
    redis.call('HINCRBY', P .. 'stats', 'inflight', #evs)
    committed = committed + #evs
    out[#out + 1] = b.id
    out[#out + 1] = np == 0 and 'ready' or 'waiting'
    out[#out + 1] = tostring(fence)
  end
end

for _, r in ipairs(as_list(cfg.rejects)) do
  local key = P .. 'ev:' .. r.e
  local h = redis.call('HMGET', key, 'st', 'b', 'h', 'pub', 'rd', 'g', 'd')
  if h[1] == 'pending' and ready_remove(r.e, tonumber(h[2]) or 0) then
    redis.call('HSET', key, 'st', 'dead_lettered', 'fate', 'FAILED', 'err', r.err,
               'stage', 'flush', 'fin', now, 'upd', now)
    redis.call('EXPIRE', key, cfg.ttl)
    if h[5] then redis.call('EXPIRE', P .. 'ref:' .. h[5], cfg.ttl) end
    dead_letter(r.e, 'flush', r.err, stored_body(h[3], h[7]), now,
                {publishedAt = h[4], group = h[6]})
    committed = committed + 1
  end
end

-- events behind a slow bundle leave the log for its blocked list (when it is still slow)
local left = false
for _, b in ipairs(as_list(cfg.blocked)) do
  local h = redis.call('HMGET', P .. 'bd:' .. b.bid, 'st', 'slow')
  if h[1] and h[1] ~= 'recorded' and h[2] == '1' then
    block(b.e, b.bid, now)
  else
    left = true
  end
end

redis.call('HINCRBY', P .. 'stats', 'planned', committed)
if cfg.final ~= false then
  redis.call('DEL', P .. 'plock')
  plan_due(now, cfg.linger, cfg.max_age, cfg.more or left or next(aborted) ~= nil)
end
return out
