-- release.lua: the holds of a recorded bundle, released a slice per call, fenced.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {id, fence, from: the first key to release (1-based, its `x` keys then its `s`
--                keys), n: how many}
-- Returns  0 when refused (no record, another fence, not recorded); else [1, 1 when no key is
--          left after this slice, else 0]
--
-- Why: releasing the holds of a bundle of 500 operations (up to a thousand keys, a few reads and
-- writes each) took milliseconds in the one call of record.lua. A bundle with more keys than one
-- call should release (record.lua's `keys`) is recorded first (outcomes, replacements,
-- followers, state `recorded`), then its holds go here, in slices. Meanwhile a hold of the
-- recorded bundle is left over, and every reader of the holds takes a recorded holder as gone
-- (commit.lua checks each holder's state, `replace` uses `bundle_alive`): it delays nothing and
-- orders nothing. A slice releases only what the bundle still holds (`unhold`), so a slice
-- repeated, or one that comes after another bundle took the key, changes nothing. A worker that
-- dies in between leaves the rest of the holds over, harmless the same way, until a later bundle
-- takes the key.

local cfg = cjson.decode(ARGV[1])
local id = cfg.id
local h = redis.call('HMGET', P .. 'bd:' .. id, 'st', 'fence', 'x', 's')
if h[1] ~= 'recorded' or tonumber(h[2]) ~= tonumber(cfg.fence) then return 0 end
local x_keys, s_keys = decoded(h[3]), decoded(h[4])
local first, last = tonumber(cfg.from), tonumber(cfg.from) + tonumber(cfg.n) - 1
local xs, ss = {}, {}
for i = first, math.min(last, #x_keys) do xs[#xs + 1] = x_keys[i] end
for i = math.max(first, #x_keys + 1), math.min(last, #x_keys + #s_keys) do
  ss[#ss + 1] = s_keys[i - #x_keys]
end
unhold(id, xs, ss)
return {1, last >= #x_keys + #s_keys and 1 or 0}
