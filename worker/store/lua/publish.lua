-- publish.lua: append a batch of validated, resolved events of one source to its ready log.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {now, ttl (s), linger, max_age, max_ops, max_bytes (ms / counts),
--                events: [{e, k, tr: [resource keys], g, b, bk?, aid?, ab?, rdn?,
--                          rd?: {ref: id}, ru?: {ref: id}}]}
--          (the members of an atomic batch `ab` are contiguous)
-- ARGV[2i], ARGV[2i+1]  the stored parts of events[i]: its JSON without data and contained, and
--          the JSON object of those two
-- A ref the event defines is written without a TTL (it gets the results TTL when its CREATE is
-- final), and an event hash of pending work has none either.
-- Returns  three strings per event: 'ok', group, seq | 'dup', assigned id, status |
--          'err', field, reason (the refused event is dead-lettered here, stage publish)
--
-- Per event, atomically: an event id already known (and not a refused publish) is a duplicate
-- and keeps its first result; a ref it defines must be free or already its own; a ref it uses
-- must still name the id it was resolved to; an atomic batch goes in whole, or is refused whole.
-- Each event gets the next seq and joins the source's ready log (one sorted set, whatever group
-- it names: a group is a packing preference, never a place an entity must wait in). Then the
-- source's planning is due: linger after the last event, never past the oldest ready event +
-- max age, now when the ready log holds a bundle's worth; never postponed once due.

local cfg = cjson.decode(ARGV[1])
local now = cfg.now
local out = {}
local events = cfg.events
local added = 0

-- Every read that a damaged key can fail (WRONGTYPE) runs before the first write, so such an
-- error leaves nothing half-written: the caller publishes each event alone to find the one at
-- fault. What is read is kept until this script writes it.
local seen, refs_now = {}, {}
for _, ev in ipairs(events) do
  seen[ev.e] = redis.call('HMGET', P .. 'ev:' .. ev.e, 'st', 'stage', 'aid')
  for _, named in ipairs({as_list(ev.rd), as_list(ev.ru)}) do
    for ref in pairs(named) do
      if refs_now[ref] == nil then refs_now[ref] = redis.call('GET', P .. 'ref:' .. ref) end
    end
  end
end

local function known(eid)
  local h = seen[eid] or redis.call('HMGET', P .. 'ev:' .. eid, 'st', 'stage', 'aid')
  if h[1] and not (h[1] == 'dead_lettered' and h[2] == 'publish') then
    return h[3] or '', h[1]
  end
  return nil
end

-- nil when the event's refs hold, else field, reason
local function refs_problem(ev, pending_refs)
  for ref, id in pairs(as_list(ev.rd)) do
    local current = pending_refs[ref] or refs_now[ref]
    if current and current ~= id then
      return 'ref', 'is already defined (live) for another resource of this source'
    end
  end
  for ref, id in pairs(as_list(ev.ru)) do
    local current = pending_refs[ref] or refs_now[ref]
    if current ~= id then
      return 'ref', 'ref ' .. ref .. ' is no longer defined as it was when resolved; publish again'
    end
  end
  return nil
end

local function refuse(i, field, reason)
  local ev = events[i]
  out[#out + 1] = 'err'
  out[#out + 1] = field
  out[#out + 1] = reason
  local err = cjson.encode({field = field, reason = reason})
  dead_letter(ev.e, 'publish', err, stored_body(ARGV[2 * i], ARGV[2 * i + 1]), now,
              {sourceKey = cfg.source, publishedAt = now})
  mark_refused(ev.e, err, now, cfg.ttl)
  seen[ev.e] = nil
end

local function apply(i)
  local ev = events[i]
  local key = P .. 'ev:' .. ev.e
  local seq = redis.call('INCR', P .. 'seq')
  redis.call('DEL', key) -- a refused publish of this id is reopened from scratch
  seen[ev.e] = nil
  local fields = {'h', ARGV[2 * i], 'd', ARGV[2 * i + 1], 'st', 'pending', 'seq', seq,
                  'g', ev.g, 'k', ev.k,
                  'tr', table.concat(as_list(ev.tr), ' '), 'b', ev.b, 'att', 0,
                  'pub', now, 'upd', now}
  if ev.bk then fields[#fields + 1] = 'bk'; fields[#fields + 1] = 1 end
  if ev.aid then fields[#fields + 1] = 'aid'; fields[#fields + 1] = ev.aid end
  if ev.ab then fields[#fields + 1] = 'ab'; fields[#fields + 1] = ev.ab end
  if ev.rdn then fields[#fields + 1] = 'rd'; fields[#fields + 1] = ev.rdn end
  redis.call('HSET', key, unpack(fields))
  for ref, id in pairs(as_list(ev.rd)) do
    -- no TTL while its CREATE is pending: the script that makes the CREATE final starts it
    -- (record.lua, commit.lua), so a ref never expires under work still waiting or in flight
    redis.call('SET', P .. 'ref:' .. ref, id)
    refs_now[ref] = id
  end
  ready_add(ev.e, seq, ev.b, now)
  added = added + 1
  out[#out + 1] = 'ok'
  out[#out + 1] = ev.g
  out[#out + 1] = tostring(seq)
end

local i = 1
while i <= #events do
  local ev = events[i]
  if not ev.ab then
    local aid, status = known(ev.e)
    if aid then
      out[#out + 1] = 'dup'; out[#out + 1] = aid; out[#out + 1] = status
    else
      local field, reason = refs_problem(ev, {})
      if field then refuse(i, field, reason) else apply(i) end
    end
    i = i + 1
  else
    -- an atomic batch: decide for every member first, then apply all or refuse all
    local last = i
    while last + 1 <= #events and events[last + 1].ab == ev.ab do last = last + 1 end
    local dups, problem = 0, nil
    local pending_refs = {}
    for j = i, last do
      local member = events[j]
      if known(member.e) then dups = dups + 1 end
      if not problem then
        local field, reason = refs_problem(member, pending_refs)
        if field then problem = {field, 'event ' .. member.e .. ': ' .. reason} end
      end
      for ref, id in pairs(as_list(member.rd)) do pending_refs[ref] = id end
    end
    local size = last - i + 1
    if dups == size then
      for j = i, last do
        local aid, status = known(events[j].e)
        out[#out + 1] = 'dup'; out[#out + 1] = aid; out[#out + 1] = status
      end
    else
      if dups > 0 then
        problem = {'atomicBatch', 'part of this batch was published before; publish it whole'}
      end
      if problem then
        for j = i, last do refuse(j, problem[1], problem[2]) end
      else
        for j = i, last do apply(j) end
      end
    end
    i = last + 1
  end
end

if added > 0 then
  redis.call('HINCRBY', P .. 'stats', 'published', added)
  local v = redis.call('HMGET', P .. 'stats', 'buffered', 'rbytes', 'rfirst')
  local n, bytes, first = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or now
  local due = math.min(now + cfg.linger, first + cfg.max_age)
  if n >= cfg.max_ops or bytes >= cfg.max_bytes then due = now end
  local current = redis.call('ZSCORE', P .. 'due', '*')
  if not (current and tonumber(current) <= now) then -- due already: never postponed
    redis.call('ZADD', P .. 'due', due, '*')
  end
end

return out
