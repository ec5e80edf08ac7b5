-- lua/pipeline_outcome.lua: the bookkeeping after a handler body ran, in one script that the
-- pipeline runs off the request path (SPEC §3.4 cache write, §3.5 measured, §3.6 audit, §3.7
-- timeout counters, §3.9 registry metrics, §3.10 breaker outcome).
-- KEYS[1] cb:circuit:{e}:state   KEYS[2] …:trips   KEYS[3] …:allowed   KEYS[4] …:failures
-- KEYS[5] …:successes   KEYS[6] …:lastFailure   KEYS[7] …:openedAt   KEYS[8] …:failures:{type}
-- KEYS[9] cb:metrics:counters   KEYS[10] cb:metrics:circuit:all   KEYS[11] cb:alerts:circuit:opened
-- KEYS[12] cb:metrics:events:{e}   KEYS[13] cb:metrics:current   KEYS[14] cb:metrics:global
-- KEYS[15] cb:audit:general   KEYS[16] cb:audit:hooks:decisions   KEYS[17] cb:audit:tools:{tool}
-- KEYS[18] cb:cache:handler:{e}:{digest}   KEYS[19] cb:metrics:cache:global
-- KEYS[20] the domain metrics hash of ARGV[23] (or any key when ARGV[23] is '')
-- ARGV[1] event   ARGV[2] ok (1/0)   ARGV[3] breaker failure type: timeout | error | '' (none)
-- ARGV[4] duration, ms   ARGV[5] breaker on (1/0)   ARGV[6] threshold   ARGV[7] open window, ms
-- ARGV[8] max open window, ms   ARGV[9] successes that close a half-open breaker   ARGV[10] actor
-- ARGV[11] now, ISO   ARGV[12] failure reason   ARGV[13] audit metadata JSON   ARGV[14] audit maxlen
-- ARGV[15] audit ttl, s   ARGV[16] cache ttl, s (0 = do not store)   ARGV[17] cache entry
-- ARGV[18] hook decision (1/0)   ARGV[19] decision   ARGV[20] decision reason   ARGV[21] params JSON
-- ARGV[22] domain   ARGV[23] domain metrics: hook | task | health | scaling | ''
-- ARGV[24] timeout layer on (1/0)
-- Returns {transition}: 'opened', 'closed' or ''.
local event = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ok = ARGV[2] == '1'
local ftype = ARGV[3]

local function count(field)
  redis.call('HINCRBY', KEYS[9], field, 1)
  redis.call('EXPIRE', KEYS[9], 3600)
end

local function audit(action, result, reason)
  redis.call('XADD', KEYS[15], 'MAXLEN', '~', ARGV[14], '*', 'action', action, 'actor', ARGV[10],
    'resource', event, 'result', result, 'reason', reason, 'metadata', ARGV[13], 'timestamp', ARGV[11])
  redis.call('EXPIRE', KEYS[15], ARGV[15])
end

local function success_rate()
  local v = redis.call('HMGET', KEYS[10], 'totalSuccesses', 'totalFailures')
  local s, f = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  if s + f > 0 then
    redis.call('HSET', KEYS[10], 'successRate', string.format('%.2f', s * 100 / (s + f)))
  end
  redis.call('EXPIRE', KEYS[10], 86400)
end

local transition = ''
if ARGV[5] == '1' then
  if ftype == '' then
    -- Any call that is not a breaker failure resets the consecutive-failure count.
    redis.call('DEL', KEYS[4])
    if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('EXISTS', KEYS[1]) == 0 then
      local s = redis.call('INCR', KEYS[5])
      redis.call('EXPIRE', KEYS[5], 3600)
      if s >= tonumber(ARGV[9]) then
        local last = tonumber(redis.call('GET', KEYS[6]) or now)
        local recovery = now - last
        local avg = tonumber(redis.call('HGET', KEYS[10], 'avgRecoveryTime') or '0')
        if avg > 0 then recovery = math.floor((avg + recovery) / 2) end
        redis.call('HSET', KEYS[10], 'lastRecoveryTime', now - last, 'avgRecoveryTime', recovery)
        redis.call('DEL', KEYS[2], KEYS[3], KEYS[5], KEYS[6], KEYS[7])
        count('circuit:' .. event .. ':closed')
        audit('circuit.closed', 'success', 'Recovered after ' .. (now - last) .. 'ms')
        transition = 'closed'
      end
    end
    count('circuit:' .. event .. ':success')
    redis.call('HINCRBY', KEYS[10], 'totalSuccesses', 1)
  else
    redis.call('INCR', KEYS[8])
    redis.call('EXPIRE', KEYS[8], 3600)
    redis.call('HINCRBY', KEYS[10], 'totalFailures', 1)
    redis.call('HINCRBY', KEYS[10], 'failures:' .. ftype, 1)
    redis.call('SET', KEYS[6], now, 'EX', 3600)
    if redis.call('GET', KEYS[1]) ~= 'OPEN' then
      local half = redis.call('EXISTS', KEYS[2]) == 1
      local n = redis.call('INCR', KEYS[4])
      redis.call('EXPIRE', KEYS[4], 3600)
      if half or n >= tonumber(ARGV[6]) then
        local trips = redis.call('INCR', KEYS[2])
        local open_ms = math.min(math.floor(tonumber(ARGV[7]) * 1.5 ^ (trips - 1)), tonumber(ARGV[8]))
        redis.call('EXPIRE', KEYS[2], 3600 + math.ceil(open_ms / 1000))
        redis.call('SET', KEYS[1], 'OPEN', 'PX', open_ms)
        redis.call('SET', KEYS[7], now, 'PX', open_ms)
        redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
        local why = half and 'Half-open trial failed' or ('Circuit opened due to ' .. n .. ' failures')
        redis.call('LPUSH', KEYS[11], cjson.encode({handler = event, severity = 'HIGH', message = why,
          timestamp = ARGV[11], openMs = open_ms}))
        redis.call('LTRIM', KEYS[11], 0, 99)
        redis.call('EXPIRE', KEYS[11], 86400)
        redis.call('HINCRBY', KEYS[10], 'totalTrips', 1)
        count('circuit:' .. event .. ':opened')
        audit('circuit.opened', 'blocked', why .. '; open for ' .. open_ms .. 'ms')
        transition = 'opened'
      end
    end
    count('circuit:' .. event .. ':failure')
  end
  success_rate()
end

if ARGV[24] == '1' then
  count('timeout:' .. event .. ':' .. (ftype == 'timeout' and 'exceeded' or 'completed'))
end
if ftype == 'timeout' then
  audit('timeout.exceeded', 'failure', 'Execution exceeded the handler timeout')
end

-- Measured layer (SPEC §3.5): call count and running mean latency.
local c = redis.call('HINCRBY', KEYS[12], 'count', 1)
local avg = tonumber(redis.call('HGET', KEYS[12], 'avgLatency') or '0')
redis.call('HSET', KEYS[12], 'avgLatency', string.format('%.3f', (avg * (c - 1) + tonumber(ARGV[4])) / c),
  'lastCalled', ARGV[11])
redis.call('HINCRBY', KEYS[12], ok and 'success' or 'errors', 1)
redis.call('EXPIRE', KEYS[12], 3600)
redis.call('HINCRBY', KEYS[13], 'events:total', 1)
redis.call('EXPIRE', KEYS[13], 300)

-- Registry metrics (SPEC §3.9, with §16 row 30: call counters only; Lua owns task counts).
redis.call('HINCRBY', KEYS[14], ARGV[22] .. (ok and ':success' or ':failure'), 1)
redis.call('EXPIRE', KEYS[14], 3600)
local dm = ARGV[23]
if dm == 'hook' and ok then
  redis.call('HINCRBY', KEYS[20], 'processed', 1)
  redis.call('EXPIRE', KEYS[20], 3600)
elseif dm == 'task' then
  redis.call('HINCRBY', KEYS[20], 'calls', 1)
elseif dm == 'health' then
  redis.call('HSET', KEYS[20], 'lastCheck', now)
  redis.call('EXPIRE', KEYS[20], 300)
elseif dm == 'scaling' then
  redis.call('HINCRBY', KEYS[20], 'instances', 1)
  redis.call('EXPIRE', KEYS[20], 300)
end

-- Audit layer (SPEC §3.6): the call, and for hooks the decision.
audit(event, ok and 'success' or 'failure', ARGV[12])
if ARGV[18] == '1' then
  redis.call('XADD', KEYS[16], 'MAXLEN', '~', ARGV[14], '*', 'tool', string.sub(event, 6),
    'decision', ARGV[19], 'reason', ARGV[20], 'timestamp', ARGV[11], 'params', ARGV[21])
  redis.call('EXPIRE', KEYS[16], ARGV[15])
  redis.call('XADD', KEYS[17], 'MAXLEN', '~', ARGV[14], '*', 'decision', ARGV[19], 'reason', ARGV[20],
    'timestamp', ARGV[11])
  redis.call('EXPIRE', KEYS[17], ARGV[15])
end

-- Cache write after a miss (successful real answers only; never fallbacks).
local ttl = tonumber(ARGV[16])
if ok and ttl > 0 then
  redis.call('SET', KEYS[18], ARGV[17], 'EX', ttl)
  redis.call('HINCRBY', KEYS[19], 'sets', 1)
  redis.call('HINCRBY', KEYS[19], 'sets:handler', 1)
  redis.call('EXPIRE', KEYS[19], 3600)
end
return {transition}
