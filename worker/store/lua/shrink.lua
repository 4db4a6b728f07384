-- shrink.lua: compare-and-set of a source's bundle-size state (string `shrink`, `cap:shrunkAtMs`).
--
-- The rule (half the failed request, doubling back over time) lives in worker/domain/sizing.py;
-- this script only makes its read-compute-write atomic without WATCH: the write happens only if
-- the key still holds what the caller read, so two workers shrinking at once never both halve
-- the same state (the loser computes again from what the winner wrote).
--
-- KEYS[1]  source prefix
-- ARGV[1]  the value the caller read ('' when there was none)
-- ARGV[2]  the new value
-- ARGV[3]  its TTL in ms (until the cap is back to max_bundle_ops)
-- Returns  {1} when written, {0, current value or ''} when the key changed since the read
--
-- A value not in the form sizing.py writes (`cap` from 1, `shrunkAtMs`, no leading zeros) counts
-- as none, as sizing.py reads it, so an unreadable value is replaced rather than blocking.

local key = KEYS[1] .. 'shrink'
local current = redis.call('GET', key) or ''
local readable = string.match(current, '^[1-9]%d*:0$')
  or string.match(current, '^[1-9]%d*:[1-9]%d*$')
if not readable then current = '' end
if current ~= ARGV[1] then return {0, current} end
redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
return {1}
