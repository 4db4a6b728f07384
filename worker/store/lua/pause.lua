-- pause.lua: a source's shared pause (hash `pause`), changed atomically by every worker.
--
-- KEYS[1]  source prefix
-- ARGV[1]  JSON {op, now, ...}:
--          'extend' {kind, reason, until}: pause until at least `until` (a probe's failure sets it
--                   outright), strikes + 1, stats `pauses` + 1
--          'gate'   {window}: may a submission go now? Returns 'open' (no pause), 'paused' (until a
--                   later time), or 'probe' (the pause ended: this caller probes, the others wait
--                   up to `window` for its answer)
--          'clear'  the Registry accepted again: the pause ends, strikes reset
-- Returns  {answer, until, strikes, kind}
--
-- Fields: kind, reason (no secret), until, since (ms), strikes, probe (1 while a probe is out).

local P = KEYS[1]
local cfg = cjson.decode(ARGV[1])
local key = P .. 'pause'
local now = tonumber(cfg.now)

local h = redis.call('HMGET', key, 'until', 'strikes', 'kind', 'probe')
local until_ms = tonumber(h[1])
local strikes = tonumber(h[2]) or 0

if cfg.op == 'extend' then
  local wanted = tonumber(cfg['until'])
  if until_ms and h[4] ~= '1' and until_ms > wanted then wanted = until_ms end
  strikes = strikes + 1
  if not until_ms or until_ms <= now then redis.call('HSET', key, 'since', now) end
  redis.call('HSET', key, 'until', wanted, 'strikes', strikes, 'kind', cfg.kind,
             'reason', cfg.reason, 'probe', 0)
  redis.call('HINCRBY', P .. 'stats', 'pauses', 1)
  return {'paused', wanted, strikes, cfg.kind}
elseif cfg.op == 'gate' then
  if not until_ms then return {'open', 0, 0, ''} end
  if until_ms > now then return {'paused', until_ms, strikes, h[3] or ''} end
  local window = now + tonumber(cfg.window)
  redis.call('HSET', key, 'until', window, 'probe', 1)
  return {'probe', window, strikes, h[3] or ''}
elseif cfg.op == 'clear' then
  local existed = redis.call('DEL', key)
  return {existed == 1 and 'cleared' or 'open', 0, strikes, h[3] or ''}
end
return redis.error_reply('pause.lua: unknown op')
