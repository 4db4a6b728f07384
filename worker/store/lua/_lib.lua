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
  redis.call('HINCRBY', P .. 'stats', 'rbytes', 0 - bytes)
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

-- Reads and writes of one hash over many fields, one command per slice of `HASH_SLICE` fields
-- (not one per field: most of a commit's or a release's cost was one command per key).
local HASH_SLICE = 1000

local function hmget_all(key, names)
  local out = {}
  for first = 1, #names, HASH_SLICE do
    local part = redis.call('HMGET', key, unpack(names, first, math.min(first + HASH_SLICE - 1,
                                                                        #names)))
    for j = 1, #part do out[first + j - 1] = part[j] end
  end
  return out
end

local function hset_all(key, pairs_list) -- {field, value, field, value, ...}
  for first = 1, #pairs_list, 2 * HASH_SLICE do
    redis.call('HSET', key, unpack(pairs_list, first, math.min(first + 2 * HASH_SLICE - 1,
                                                               #pairs_list)))
  end
end

local function hdel_all(key, names)
  for first = 1, #names, HASH_SLICE do
    redis.call('HDEL', key, unpack(names, first, math.min(first + HASH_SLICE - 1, #names)))
  end
end

-- `la` key -> the action of the last unfinished bundle that writes it. An UPSERT behind an
-- unfinished DELETE or CREATE of the entity is `UPSERT+<that bundle>`: the entity is deleted or
-- created again after what the pipeline knows of it, and its relationships with it; read.lua
-- reports it as `UPSERT+` while that bundle is unfinished. Call before the bundle takes the
-- keys' holds, or give the writers it takes them over from (`prev`).
local function set_actions(acts, prev) -- {key = action}, {key = writer before} or nil
  local names, values, upserts = {}, {}, {}
  for k, action in pairs(acts) do
    names[#names + 1] = k
    values[#names] = action
    if action == 'UPSERT' then upserts[#upserts + 1] = #names end
  end
  if #upserts > 0 then
    local wanted = {}
    for j, i in ipairs(upserts) do wanted[j] = names[i] end
    local before = hmget_all(P .. 'la', wanted)
    local behind = {} -- indexes of `names` behind an unfinished DELETE or CREATE
    for j, i in ipairs(upserts) do
      local b = before[j]
      if b == 'DELETE' or b == 'CREATE' then
        behind[#behind + 1] = i
      elseif b and string.sub(b, 1, 7) == 'UPSERT+' then
        values[i] = b
      end
    end
    if #behind > 0 then
      local writers = prev
      if not writers then
        local keys_behind = {}
        for j, i in ipairs(behind) do keys_behind[j] = names[i] end
        local got = hmget_all(P .. 'hx', keys_behind)
        writers = {}
        for j, k in ipairs(keys_behind) do writers[k] = got[j] end
      end
      for _, i in ipairs(behind) do
        if writers[names[i]] then values[i] = 'UPSERT+' .. writers[names[i]] end
      end
    end
  end
  local flat = {}
  for i, k in ipairs(names) do flat[#flat + 1] = k; flat[#flat + 1] = values[i] end
  hset_all(P .. 'la', flat)
end

-- Holds: `hx` key -> the last unfinished bundle that writes it (`la` key -> the action of its
-- operation there, so planning knows an entity deleted just before); `hs:<key>` the unfinished bundles
-- that read it (a relationship's end) since; `hsn` key -> how many. A bundle's predecessors are
-- the holders it conflicts with (a write conflicts with both kinds, a read with the writer).
local function holders_of(x_keys, s_keys, self_id, into)
  if #x_keys > 0 then
    local writers = hmget_all(P .. 'hx', x_keys)
    local readers = hmget_all(P .. 'hsn', x_keys)
    for i, k in ipairs(x_keys) do
      local w = writers[i]
      if w and w ~= self_id then into[w] = true end
      if readers[i] then
        for _, r in ipairs(redis.call('SMEMBERS', P .. 'hs:' .. k)) do
          if r ~= self_id then into[r] = true end
        end
      end
    end
  end
  if #s_keys > 0 then
    local writers = hmget_all(P .. 'hx', s_keys)
    for i = 1, #s_keys do
      local w = writers[i]
      if w and w ~= self_id then into[w] = true end
    end
  end
  return into
end

local function hold(bid, x_keys, s_keys)
  if #x_keys > 0 then
    local readers = hmget_all(P .. 'hsn', x_keys)
    local writes, read_before = {}, {}
    for i, k in ipairs(x_keys) do
      writes[#writes + 1] = k
      writes[#writes + 1] = bid
      if readers[i] then read_before[#read_before + 1] = k end
    end
    hset_all(P .. 'hx', writes)
    if #read_before > 0 then
      hdel_all(P .. 'hsn', read_before)
      for _, k in ipairs(read_before) do redis.call('DEL', P .. 'hs:' .. k) end
    end
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
  if #x_keys > 0 then
    local writers = hmget_all(P .. 'hx', x_keys)
    local own = {}
    for i, k in ipairs(x_keys) do
      if writers[i] == bid then own[#own + 1] = k end
    end
    if #own > 0 then
      hdel_all(P .. 'hx', own)
      hdel_all(P .. 'la', own)
    end
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

-- A trimmed bundle's holds on what it gave back return to the predecessors it took them over
-- from (the latest one still unfinished), so nothing later on its entities overtakes them.
local function restore_holds(bid, x_keys, s_keys, preds)
  local live = {}
  for _, p in ipairs(preds) do
    local h = redis.call('HMGET', P .. 'bd:' .. p, 'st', 'x', 's', 'cseq')
    if h[1] and h[1] ~= 'recorded' then
      live[#live + 1] = {id = p, x = as_set(decoded(h[2])), s = as_set(decoded(h[3])),
                         cseq = tonumber(h[4]) or 0}
    end
  end
  for _, k in ipairs(x_keys) do
    if redis.call('HGET', P .. 'hx', k) == bid then
      redis.call('HDEL', P .. 'hx', k)
      redis.call('HDEL', P .. 'la', k) -- what the predecessor planned there is not known here
      -- the latest predecessor that writes it, and the readers after that one (the earlier
      -- ones it followed are behind it already)
      local writer = nil
      for _, p in ipairs(live) do
        if p.x[k] and (not writer or p.cseq > writer.cseq) then writer = p end
      end
      if writer then redis.call('HSET', P .. 'hx', k, writer.id) end
      for _, p in ipairs(live) do
        if p.s[k] and (not writer or p.cseq > writer.cseq)
           and redis.call('SADD', P .. 'hs:' .. k, p.id) == 1 then
          redis.call('HINCRBY', P .. 'hsn', k, 1)
        end
      end
    end
  end
  drop_readers(bid, s_keys)
end

-- Trimming. When events go back to the ready log (`written`/`read`: the keys they write and
-- reference), every waiting bundle that follows them gives back the operations that touch those
-- keys in a conflicting way (with their atomic batches): their events go back to the log too,
-- under their seqs, never sent, and their keys join written/read for the bundles after. What the
-- bundle keeps goes on; a bundle left empty is deleted. Bundles are looked at in commit order
-- (`cseq`), starting from `followers` and going on through the followers of each bundle that gave
-- something back: a bundle that conflicts with a key that went back always follows the bundle
-- it went back from, or one that gave back its own operation on that key.

local function op_keys(carrier)
  local e = redis.call('HMGET', P .. 'ev:' .. carrier, 'k', 'tr', 'ab')
  local ends = {}
  for _, r in ipairs(split(e[2])) do
    if r ~= e[1] then ends[#ends + 1] = r end
  end
  return e[1] or '', ends, e[3]
end

local function encode_ops(ops)
  local parts = {}
  for _, op in ipairs(ops) do parts[#parts + 1] = cjson.encode(op) end
  return '[' .. table.concat(parts, ',') .. ']'
end

-- Decide what a waiting bundle gives back; nil when nothing (or it is not waiting).
local function trim_plan(d, written, read)
  local h = redis.call('HMGET', P .. 'bd:' .. d, 'st', 'x', 's', 'layout', 'pre', 'cseq')
  if h[1] ~= 'waiting' or not conflicts(decoded(h[2]), decoded(h[3]), written, read) then
    return nil
  end
  local layout = cjson.decode(h[4])
  local ops, batches = {}, {}
  for _, kind in ipairs({'r', 'l'}) do
    for _, op in ipairs(as_list(layout[kind])) do
      local members = as_list(op[2])
      local k, ends, ab = op_keys(members[#members][1])
      ops[#ops + 1] = {kind = kind, op = op, k = k, ends = ends, ab = ab, hit = false}
    end
  end
  -- what goes back takes with it, inside the bundle too, what runs after it on its keys (a
  -- relationship on a resource written just before it in the bundle), until nothing changes
  local gone_w, gone_r = {}, {}
  local changed = true
  while changed do
    changed = false
    for _, o in ipairs(ops) do
      if not o.hit and (conflicts({o.k}, o.ends, written, read)
                        or conflicts({o.k}, o.ends, gone_w, gone_r)
                        or (o.ab and batches[o.ab])) then
        o.hit = true
        changed = true
        gone_w[o.k] = true
        for _, e in ipairs(o.ends) do gone_r[e] = true end
        if o.ab then batches[o.ab] = true end
      end
    end
  end
  local keep = {r = {}, l = {}}
  local gave, kept_x, kept_s, events, kept_events = {}, {}, {}, {}, {}
  for _, o in ipairs(ops) do
    if o.hit or (o.ab and batches[o.ab]) then
      gave[#gave + 1] = o
    else
      table.insert(keep[o.kind], o.op)
      kept_x[o.k] = true
      for _, member in ipairs(as_list(o.op[2])) do kept_events[#kept_events + 1] = member[1] end
    end
    for _, member in ipairs(as_list(o.op[2])) do events[#events + 1] = member[1] end
  end
  for _, o in ipairs(ops) do
    if not (o.hit or (o.ab and batches[o.ab])) then
      for _, e in ipairs(o.ends) do
        if not kept_x[e] then kept_s[e] = true end
      end
    end
  end
  return {id = d, x = decoded(h[2]), s = decoded(h[3]), pre = decoded(h[5]),
          cseq = tonumber(h[6]) or 0, layout = layout, keep = keep, gave = gave,
          kept_x = kept_x, kept_s = kept_s, kept_events = kept_events}
end

local function trim(followers, written, read, now)
  local queue, queued, done = {}, {}, {}
  local function push(d)
    if queued[d] then return end
    local c = tonumber(redis.call('HGET', P .. 'bd:' .. d, 'cseq'))
    if not c then return end
    queued[d] = true
    queue[#queue + 1] = {d, c}
    table.sort(queue, function(a, b) return a[2] > b[2] end) -- smallest cseq last
  end
  for _, f in ipairs(followers) do push(f) end
  local moved = 0
  while #queue > 0 do
    local d = table.remove(queue)[1]
    local plan = trim_plan(d, written, read)
    if plan then
      done[#done + 1] = plan
      for _, o in ipairs(plan.gave) do
        written[o.k] = true
        for _, e in ipairs(o.ends) do read[e] = true end
        for _, member in ipairs(as_list(o.op[2])) do
          local ekey = P .. 'ev:' .. member[1]
          local e = redis.call('HMGET', ekey, 'st', 'bd', 'seq', 'b')
          if e[1] == 'in_flight' and e[2] == d then
            redis.call('HSET', ekey, 'st', 'pending', 'bd', '', 'upd', now)
            ready_add(member[1], tonumber(e[3]), tonumber(e[4]) or 0, now)
            moved = moved + 1
          end
        end
      end
      for _, f in ipairs(redis.call('SMEMBERS', P .. 'dep:' .. d)) do push(f) end
    end
  end
  -- holds go back latest first, to predecessors as they were (x/s not yet rewritten), so each
  -- key returns to the unfinished bundle that held it before
  for i = #done, 1, -1 do
    local plan = done[i]
    local dropped_x, dropped_s = {}, {}
    for _, k in ipairs(plan.x) do
      if not plan.kept_x[k] then dropped_x[#dropped_x + 1] = k end
    end
    for _, k in ipairs(plan.s) do
      if not plan.kept_s[k] then dropped_s[#dropped_s + 1] = k end
    end
    restore_holds(plan.id, dropped_x, dropped_s, plan.pre)
  end
  local gone = {}
  for _, plan in ipairs(done) do
    local key = P .. 'bd:' .. plan.id
    local given = 0
    for _, o in ipairs(plan.gave) do given = given + #as_list(o.op[2]) end
    if given > 0 then redis.call('HINCRBY', P .. 'stats', 'inflight', 0 - given) end
    if #plan.kept_events == 0 then
      gone[#gone + 1] = plan.id
      redis.call('DEL', key)
      redis.call('HINCRBY', P .. 'stats', 'bundles', -1)
      redis.call('HINCRBY', P .. 'stats', 'dissolved', 1)
    else
      -- a key it only references now (its write went back): a reader again
      for k in pairs(plan.kept_s) do
        local was_writer = false
        for _, x in ipairs(plan.x) do if x == k then was_writer = true end end
        if was_writer and redis.call('SADD', P .. 'hs:' .. k, plan.id) == 1 then
          redis.call('HINCRBY', P .. 'hsn', k, 1)
        end
      end
      local x_list, s_list = {}, {}
      for k in pairs(plan.kept_x) do x_list[#x_list + 1] = k end
      for k in pairs(plan.kept_s) do s_list[#s_list + 1] = k end
      table.sort(x_list)
      table.sort(s_list)
      local layout = plan.layout
      local extra = ''
      for _, name in ipairs({'i', 'k', 't'}) do
        if layout[name] ~= nil then
          extra = extra .. ',"' .. name .. '":' .. cjson.encode(layout[name])
        end
      end
      redis.call('HSET', key, 'ev', cjson.encode(plan.kept_events),
                 'x', cjson.encode(x_list), 's', #s_list > 0 and cjson.encode(s_list) or '[]',
                 'layout', '{"r":' .. encode_ops(plan.keep.r) .. ',"l":' ..
                   encode_ops(plan.keep.l) .. extra .. '}',
                 'n', #plan.kept_events, 'trimmed', 1, 'upd', now)
      redis.call('HINCRBY', P .. 'stats', 'trimmed', 1)
    end
  end
  return moved, gone
end

-- Bundles stop waiting for `finished` (recorded, or slow) and for the bundles trimming deleted;
-- the ones with no predecessor left are ready to send.
local function unblock_followers(finished, gone, now)
  local lost = {}
  if finished then
    for _, f in ipairs(redis.call('SMEMBERS', P .. 'dep:' .. finished)) do
      lost[f] = (lost[f] or 0) + 1
    end
    redis.call('DEL', P .. 'dep:' .. finished)
  end
  for _, g in ipairs(gone) do
    for _, f in ipairs(redis.call('SMEMBERS', P .. 'dep:' .. g)) do lost[f] = (lost[f] or 0) + 1 end
    redis.call('DEL', P .. 'dep:' .. g)
  end
  local names = {}
  for f in pairs(lost) do names[#names + 1] = f end
  table.sort(names)
  local ready_ids = {}
  for _, f in ipairs(names) do
    local key = P .. 'bd:' .. f
    if redis.call('HGET', key, 'st') == 'waiting'
       and redis.call('HINCRBY', key, 'np', -lost[f]) <= 0 then
      redis.call('HSET', key, 'st', 'planned', 'np', 0, 'upd', now)
      redis.call('ZADD', P .. 'claims', now, f)
      ready_ids[#ready_ids + 1] = f
    end
  end
  return ready_ids
end

-- A bundle's record, as commit.lua and record.lua write it: `planned` when it follows nothing
-- unfinished, else `waiting` for its `np` predecessors (`pre`). `cseq` orders it among the
-- bundles that touch its keys; the bundles that take a recorded one's place fill the gap `cgap`
-- below the next number (see `replace`).
local function write_bundle(b, pre, cseq, cgap, fence, cexp, now)
  local evs = as_list(b.ev)
  redis.call('HSET', P .. 'bd:' .. b.id, 'st', #pre == 0 and 'planned' or 'waiting', 'np', #pre,
             'fence', fence, 'cexp', cexp, 'ev', cjson.encode(evs),
             'x', cjson.encode(as_list(b.x)), 's', cjson.encode(as_list(b.s)),
             'layout', b.layout, 'groups', cjson.encode(as_list(b.groups)), 'n', #evs,
             'att', 0, 'stale', 0, 'created', now, 'upd', now, 'cseq', cseq, 'cgap', cgap,
             'pre', cjson.encode(pre))
  redis.call('HINCRBY', P .. 'stats', 'bundles', 1)
end

-- Whether a bundle is unfinished. A hold of a recorded bundle may outlive it for a few calls (a
-- large bundle's holds are released after its record, by release.lua; or for good, when the
-- worker died in between): every reader of the holds takes such a holder as gone.
local function bundle_alive(bid)
  local state = redis.call('HGET', P .. 'bd:' .. bid, 'st')
  return state and state ~= 'recorded'
end

-- The events a record sends back, planned again by the recorder (`bundles`, in plan order), take
-- the recorded bundle's place: each waiting follower of it that conflicts with a replacement
-- waits for that replacement too, so nothing planned after the events sent back overtakes them,
-- and nothing goes back to the ready log or is given back by a follower. A replacement holds a
-- key only where no later bundle does (a later holder follows it already). Returns the
-- replacements ready to send.
local function replace(bid, bundles, now)
  local followers = {}
  for _, f in ipairs(redis.call('SMEMBERS', P .. 'dep:' .. bid)) do
    local fh = redis.call('HMGET', P .. 'bd:' .. f, 'st', 'x', 's', 'pre')
    if fh[1] == 'waiting' then
      followers[#followers + 1] = {id = f, x = decoded(fh[2]), s = decoded(fh[3]),
                                   pre = decoded(fh[4])}
    end
  end
  local bh = redis.call('HMGET', P .. 'bd:' .. bid, 'cseq', 'cgap')
  local base, gap = tonumber(bh[1]) or 0, tonumber(bh[2]) or 1
  local step = gap / (#bundles + 1)
  local mine, ready = {[bid] = true}, {}
  for i, b in ipairs(bundles) do
    local x_keys, s_keys = as_list(b.x), as_list(b.s)
    local pre = {}
    for _, p in ipairs(as_list(b.pre)) do
      redis.call('SADD', P .. 'dep:' .. p, b.id)
      pre[#pre + 1] = p
    end
    local written, read = as_set(x_keys), as_set(s_keys)
    for _, f in ipairs(followers) do
      if conflicts(f.x, f.s, written, read) then
        redis.call('SADD', P .. 'dep:' .. b.id, f.id)
        redis.call('HINCRBY', P .. 'bd:' .. f.id, 'np', 1)
        f.pre[#f.pre + 1] = b.id
        f.changed = true
      end
    end
    local acts, taken, prev = as_list(b.acts), {}, {}
    for _, k in ipairs(x_keys) do
      local w = redis.call('HGET', P .. 'hx', k)
      if not w or mine[w] or not bundle_alive(w) then
        redis.call('HSET', P .. 'hx', k, b.id)
        taken[k], prev[k] = acts[k], w
      end
    end
    set_actions(taken, prev)
    for _, k in ipairs(s_keys) do
      local w = redis.call('HGET', P .. 'hx', k)
      if (not w or mine[w] or not bundle_alive(w))
         and redis.call('SADD', P .. 'hs:' .. k, b.id) == 1 then
        redis.call('HINCRBY', P .. 'hsn', k, 1)
      end
    end
    mine[b.id] = true
    write_bundle(b, pre, string.format('%.17g', base + i * step), string.format('%.17g', step),
                 0, 0, now)
    if #pre == 0 then
      redis.call('ZADD', P .. 'claims', now, b.id)
      ready[#ready + 1] = b.id
    end
  end
  for _, f in ipairs(followers) do
    if f.changed then redis.call('HSET', P .. 'bd:' .. f.id, 'pre', cjson.encode(f.pre)) end
  end
  return ready
end

-- A recorded bundle leaves the scheduler: its holds go (everything it took over was finished
-- before it was sent), the waiting bundles after it give back what touches the events it sent
-- back (`written`/`read`), and its followers stop waiting for it. Returns the bundles that
-- became ready, and how many events trimming sent back.
local function release(bid, x_keys, s_keys, written, read, now)
  unhold(bid, x_keys, s_keys)
  local moved, gone = 0, {}
  if next(written) ~= nil or next(read) ~= nil then
    moved, gone = trim(redis.call('SMEMBERS', P .. 'dep:' .. bid), written, read, now)
  end
  return unblock_followers(bid, gone, now), moved
end

-- Slow holders. A bundle that turns STALE or is parked may hold its entities for days; it must
-- delay only what follows it. So its waiting followers give back at once what touches its keys
-- (trimmed as if it had sent everything back; what they keep stops waiting for it), its keys are
-- listed in
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
  local written, read = as_set(x_keys), as_set(s_keys)
  local moved, gone = trim(redis.call('SMEMBERS', P .. 'dep:' .. bid), written, read, now)
  unblock_followers(bid, gone, now)
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

-- A final outcome (APPLIED, COALESCED, FAILED) of an event still in flight in bundle `bid`: the
-- event hash and the ref it defines get the results TTL, a FAILED event is dead-lettered. Returns
-- nil when the event is not in flight in that bundle (settled already, by an earlier call of the
-- same record, or never its); else 1, and 1 more when it was dead-lettered. record.lua and
-- settle.lua both settle through it, so a chunk settled before a crash is never settled again.
local FINAL_STATUS = {APPLIED = 'applied', COALESCED = 'coalesced', FAILED = 'dead_lettered'}

local function settle_final(o, bid, task, now, ttl)
  local ekey = P .. 'ev:' .. o.e
  local e = redis.call('HMGET', ekey, 'st', 'bd', 'att', 'rd')
  if e[1] ~= 'in_flight' or e[2] ~= bid then return nil end
  local attempts = (tonumber(e[3]) or 0) + 1
  redis.call('HSET', ekey, 'st', FINAL_STATUS[o.f], 'fate', o.f, 'err', o.err or '',
             'reason', o.r or '', 'bound', o.bt or '', 'task', task or '', 'att', attempts,
             'fin', now, 'upd', now)
  local lettered = 0
  if o.f == 'FAILED' then
    redis.call('HSET', ekey, 'stage', 'record')
    local f = redis.call('HMGET', ekey, 'g', 'h', 'd', 'pub')
    dead_letter(o.e, 'record', o.err, stored_body(f[2], f[3]), now, {bundleId = bid,
                taskId = task, publishedAt = f[4], attempts = attempts, group = f[1],
                reason = o.r, boundTo = o.bt})
    lettered = 1
  end
  redis.call('EXPIRE', ekey, ttl)
  if e[4] then redis.call('EXPIRE', P .. 'ref:' .. e[4], ttl) end
  return 1, lettered
end
