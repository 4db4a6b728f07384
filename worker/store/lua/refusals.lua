-- refusals.lua: fold one recorded answer into a source's refusal rate (hash `refusals`) and
-- into what foresight knows of its entities (hash `known`).
--
-- The rules (what counts, the half-life, the decisions) live in worker/domain/refusals.py,
-- foresight.py and lessons.py; this script only applies their arithmetic atomically, so two
-- workers recording at once lose no count:
-- f = f * decay + failures, j = j * decay + judged, every = every or this answer's, and the
-- same decay for foresight's hits and misses (kh, km: known; gh, gm: guessed).
--
-- KEYS[1]  source prefix
-- ARGV[1]  operations refused on their own in this answer
-- ARGV[2]  operations judged
-- ARGV[3]  decay: how much older counts weigh now (0.5 per half-life of operations judged)
-- ARGV[4]  1 when this answer named two failures or more (the Registry reports every one)
-- ARGV[5]  TTL in ms (both hashes are statistics: a source that goes quiet forgets them)
-- ARGV[6..9]  foresight's hits and misses in this answer: known hits, known misses, guessed
--             hits, guessed misses
-- ARGV[10] the most entities `known` holds (over it, it is dropped whole and learnt again)
-- ARGV[11..] facts, in the order the Registry ran the operations: `e <resource>` exists,
--          `a <resource>` absent, `l <relationship> <from> <to>` exists (so do its ends),
--          `d <relationship>` absent
-- Returns  {f, j, every, kh, km, gh, gm} after the fold, numbers as strings
--
-- `known` holds a generation per resource, odd while it exists, and per relationship the
-- generations of its ends when it was written (`-`: known absent): a resource deleted and
-- created again leaves its old relationships behind without touching them.

local key = KEYS[1] .. 'refusals'
local decay = tonumber(ARGV[3])
local h = redis.call('HMGET', key, 'f', 'j', 'every', 'kh', 'km', 'gh', 'gm')
local function folded(j, added)
  return string.format('%.10g', (tonumber(h[j]) or 0) * decay + tonumber(added))
end
local fs, js = folded(1, ARGV[1]), folded(2, ARGV[2])
local every = (h[3] == '1' or ARGV[4] == '1') and '1' or '0'
local seen = {folded(4, ARGV[6]), folded(5, ARGV[7]), folded(6, ARGV[8]), folded(7, ARGV[9])}
redis.call('HSET', key, 'f', fs, 'j', js, 'every', every, 'kh', seen[1], 'km', seen[2],
           'gh', seen[3], 'gm', seen[4])
redis.call('PEXPIRE', key, ARGV[5])

local cap = tonumber(ARGV[10]) or 0
if #ARGV > 10 and cap > 0 then
  local known = KEYS[1] .. 'known'
  -- the facts parsed, and every resource they name read at once (one HMGET per 500)
  local facts, names, named = {}, {}, {}
  local function want(k)
    if not named[k] then named[k] = true; names[#names + 1] = k end
  end
  for i = 11, #ARGV do
    local fact = ARGV[i]
    local kind, rest = string.sub(fact, 1, 1), string.sub(fact, 3)
    if kind == 'l' then
      local a = string.find(rest, ' ', 1, true)
      local b = string.find(rest, ' ', a + 1, true)
      local from, to = string.sub(rest, a + 1, b - 1), string.sub(rest, b + 1)
      want(from); want(to)
      facts[#facts + 1] = {kind, string.sub(rest, 1, a - 1), from, to}
    else
      if kind ~= 'd' then want(rest) end
      facts[#facts + 1] = {kind, rest}
    end
  end
  local generation = {}
  for first = 1, #names, 500 do
    local last = math.min(first + 499, #names)
    local got = redis.call('HMGET', known, unpack(names, first, last))
    for j = first, last do generation[names[j]] = tonumber(got[j - first + 1]) end
  end
  local out, order = {}, {}
  local function put(k, v)
    if out[k] == nil then order[#order + 1] = k end
    out[k] = v
  end
  local function exists(k)
    local g = generation[k]
    if g == nil or g % 2 == 0 then
      g = (g or 0) + 1
      generation[k] = g
      put(k, g)
    end
    return g
  end
  for _, f in ipairs(facts) do
    local kind = f[1]
    if kind == 'e' then
      exists(f[2])
    elseif kind == 'a' then
      local g = generation[f[2]]
      if g == nil or g % 2 == 1 then
        generation[f[2]] = (g or -1) + 1
        put(f[2], generation[f[2]])
      end
    elseif kind == 'l' then
      put(f[2], string.format('%d:%d', exists(f[3]), exists(f[4])))
    elseif kind == 'd' then
      put(f[2], '-')
    end
  end
  for first = 1, #order, 250 do
    local pairs_ = {}
    for j = first, math.min(first + 249, #order) do
      pairs_[#pairs_ + 1] = order[j]
      pairs_[#pairs_ + 1] = out[order[j]]
    end
    redis.call('HSET', known, unpack(pairs_))
  end
  if redis.call('HLEN', known) > cap then
    redis.call('DEL', known)
  else
    redis.call('PEXPIRE', known, ARGV[5])
  end
end
return {fs, js, every, seen[1], seen[2], seen[3], seen[4]}
