-- events.lua: some stored events as a planning round reads them, in one reply.
--
-- KEYS[1]  source prefix
-- ARGV[1]  the bundle the events must still be in flight in ('' for any event)
-- ARGV[2..] event ids
-- Returns  [rows JSON, contents], as read.lua returns its events: rows is one JSON array of
--          [eventId, seq, head (embedded as is), nm (0|1), k, tr, ab, g, bytes] in the order
--          asked, missing events (and, with a bundle, those no longer in flight in it) left out;
--          contents is their stored data and contained, joined by the record separator.
--
-- Why: planning again what a record sends back read each event with its own HMGET in a client
-- pipeline, and parsing one reply per event cost the client more than planning them. Here the
-- client parses two strings, whatever the count. bytes is the stored head and content's length
-- (content '{}' when the event has neither data nor contained), as planning sizes requests.

local bundle = ARGV[1]
local parts, contents = {}, {}
for i = 2, #ARGV do
  local eid = ARGV[i]
  local h = redis.call('HMGET', P .. 'ev:' .. eid, 'h', 'nm', 'k', 'tr', 'ab', 'g', 'd', 'seq',
                       'st', 'bd')
  if h[1] and (bundle == '' or (h[9] == 'in_flight' and h[10] == bundle)) then
    local content = h[7] or '{}'
    -- ids, keys, groups and batch ids never hold a quote or a backslash (see read.lua)
    parts[#parts + 1] = '["' .. eid .. '",' .. (h[8] or '0') .. ',' .. h[1] .. ',' ..
      (h[2] == '1' and '1' or '0') .. ',"' .. (h[3] or '') .. '","' .. (h[4] or '') .. '",' ..
      (h[5] and ('"' .. h[5] .. '"') or 'false') .. ',"' .. (h[6] or '') .. '",' ..
      (#h[1] + #content) .. ']'
    contents[#parts] = content
  end
end
return {'[' .. table.concat(parts, ',') .. ']', table.concat(contents, '\30')}
