-- snapshot.lua: read due buffers, the buffers that share their resources, their events and the
-- lock state around them, atomically.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {groups: [due groups, most overdue first], limit: events to read at most,
--                max_groups: buffers one due group may pull in (itself included)}
-- Returns  [meta JSON, events JSON]; events is one JSON array of
--          [eventId, seq, group, body (the stored JSON, embedded as is), nm (0|1), k, tr], so the
--          caller decodes one document instead of thousands of replies;
--          meta = {seq: the source's sequence now,
--                  groups: [{g, total, read, next?: seq of the first unread, nab?: its batch}]
--                          (every buffer listed, in reading order; read 0 when the limit ran out),
--                  touch: {resourceKey: [group, count, ...]} for every resource the events touch,
--                  locks: {entityKey: {x: bundle or false, s: [bundles]}} for those resources
--                         and for the relationships the events write,
--                  shrink: the source's bundle-size state (`shrink`, see shrink.lua) or false,
--                          so that planning knows the cap without another round trip}
--
-- Each due group is followed by its closure, the walk of grouping.flush_set: every buffer whose
-- pending events touch (write, or reference as a relationship end) a resource its events touch,
-- transitively, up to max_groups per due group. The caller holds back whatever touches a
-- resource that an unread buffer also touches. Nothing is changed.

local cfg = cjson.decode(ARGV[1])
local budget = cfg.limit
local max_groups = cfg.max_groups
local parts = {}
local meta = {seq = tonumber(redis.call('GET', P .. 'seq') or '0'), groups = {}, touch = {},
              locks = {}, shrink = redis.call('GET', P .. 'shrink')}
local listed = {}
local touch_of = {} -- resource -> flat HGETALL
local relationships = {}

-- read one buffer (up to the budget); returns the resources its read events touch
local function read(group)
  local bkey = P .. 'buf:' .. group
  local total = redis.call('ZCARD', bkey)
  local take = math.min(total, budget)
  local info = {g = group, total = total, read = take}
  local touched = {}
  if take > 0 then
    local items = redis.call('ZRANGE', bkey, 0, take - 1, 'WITHSCORES')
    for j = 1, #items, 2 do
      local eid = items[j]
      local h = redis.call('HMGET', P .. 'ev:' .. eid, 'body', 'nm', 'k', 'tr')
      parts[#parts + 1] = '[' .. cjson.encode(eid) .. ',' .. tostring(tonumber(items[j + 1])) ..
        ',' .. cjson.encode(group) .. ',' .. (h[1] or 'null') .. ',' ..
        (h[2] == '1' and '1' or '0') .. ',' .. cjson.encode(h[3] or '') .. ',' ..
        cjson.encode(h[4] or '') .. ']'
      for _, r in ipairs(split(h[4])) do touched[#touched + 1] = r end
      if h[3] and string.sub(h[3], 1, 4) == 'rel:' then relationships[h[3]] = true end
    end
    budget = budget - take
  end
  if take < total then
    local following = redis.call('ZRANGE', bkey, take, take, 'WITHSCORES')
    info.next = tonumber(following[2])
    info.nab = redis.call('HGET', P .. 'ev:' .. following[1], 'ab') or false
  end
  meta.groups[#meta.groups + 1] = info
  listed[group] = true
  return touched
end

local function groups_touching(resource)
  local flat = touch_of[resource]
  if not flat then
    flat = redis.call('HGETALL', P .. 'touch:' .. resource)
    touch_of[resource] = flat
  end
  return flat
end

for _, seed in ipairs(as_list(cfg.groups)) do
  if not listed[seed] then
    local carried = 1
    local frontier = {read(seed)}
    while #frontier > 0 do
      local resources = table.remove(frontier)
      for _, r in ipairs(resources) do
        local flat = groups_touching(r)
        for j = 1, #flat, 2 do
          local other = flat[j]
          if not listed[other] and carried < max_groups then
            carried = carried + 1
            frontier[#frontier + 1] = read(other)
          end
        end
      end
    end
  end
end

for r, flat in pairs(touch_of) do
  meta.touch[r] = flat
  meta.locks[r] = {x = redis.call('HGET', P .. 'xlock', r) or false,
                   s = redis.call('SMEMBERS', P .. 'slock:' .. r)}
end
for k in pairs(relationships) do
  meta.locks[k] = {x = redis.call('HGET', P .. 'xlock', k) or false, s = {}}
end

return {cjson.encode(meta), '[' .. table.concat(parts, ',') .. ']'}
