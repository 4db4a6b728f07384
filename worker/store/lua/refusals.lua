-- refusals.lua: fold one recorded answer into a source's refusal rate (hash `refusals`).
--
-- The rule (what counts, the half-life, the decision) lives in worker/domain/refusals.py; this
-- script only applies its arithmetic atomically, so two workers recording at once lose no count:
-- f = f * decay + failures, j = j * decay + judged, every = every or this answer's.
--
-- KEYS[1]  source prefix
-- ARGV[1]  operations refused on their own in this answer
-- ARGV[2]  operations judged
-- ARGV[3]  decay: how much older counts weigh now (0.5 per half-life of operations judged)
-- ARGV[4]  1 when this answer named two failures or more (the Registry reports every one)
-- ARGV[5]  TTL in ms (the rate is statistics: a source that goes quiet forgets it)
-- Returns  {f, j, every} after the fold, numbers as strings

local key = KEYS[1] .. 'refusals'
local h = redis.call('HMGET', key, 'f', 'j', 'every')
local decay = tonumber(ARGV[3])
local f = (tonumber(h[1]) or 0) * decay + tonumber(ARGV[1])
local j = (tonumber(h[2]) or 0) * decay + tonumber(ARGV[2])
local every = (h[3] == '1' or ARGV[4] == '1') and '1' or '0'
local fs, js = string.format('%.10g', f), string.format('%.10g', j)
redis.call('HSET', key, 'f', fs, 'j', js, 'every', every)
redis.call('PEXPIRE', key, ARGV[5])
return {fs, js, every}
