-- lua/pipeline_outcome.lua: the bookkeeping after handler bodies ran, for a run of consecutive
-- calls of one handler, in one script the pipeline sends off the request path (SPEC §3.4 cache
-- write, §3.5 measured, §3.6 audit, §3.7 timeout counters, §3.9 registry metrics, §3.10 breaker
-- outcome). The calls are taken in order: breaker accounting and audit entries happen call by
-- call, exactly as separate scripts would; counters that only add up are summed here and written
-- once per key, so a burst of N calls costs a few writes (and AOF records) instead of N times as
-- many. The values stored at the end are the ones N one-call runs would leave.
-- KEYS[1] cb:circuit:{e}:state   KEYS[2] …:trips   KEYS[3] …:allowed   KEYS[4] …:failures
-- KEYS[5] …:successes   KEYS[6] …:lastFailure   KEYS[7] …:openedAt   KEYS[8] …:failures:timeout
-- KEYS[9] …:failures:error   KEYS[10] cb:metrics:counters   KEYS[11] cb:metrics:circuit:all
-- KEYS[12] cb:alerts:circuit:opened   KEYS[13] cb:metrics:events:{e}   KEYS[14] cb:metrics:current
-- KEYS[15] cb:metrics:global   KEYS[16] cb:audit:general   KEYS[17] cb:audit:hooks:decisions
-- KEYS[18] cb:audit:tools:{tool}   KEYS[19] cb:metrics:cache:global
-- KEYS[20] the domain metrics hash of ARGV[10] (or any key when ARGV[10] is '')
-- KEYS[21..] cb:cache:handler:{e}:{digest} of the calls that store an answer
-- ARGV[1] event   ARGV[2] breaker on (1/0)   ARGV[3] threshold   ARGV[4] open window, ms
-- ARGV[5] max open window, ms   ARGV[6] successes that close a half-open breaker
-- ARGV[7] audit maxlen   ARGV[8] audit ttl, s   ARGV[9] domain
-- ARGV[10] domain metrics: hook | task | health | scaling | ''   ARGV[11] timeout layer on (1/0)
-- ARGV[12] number of calls N, then 14 values per call from ARGV[13]:
--   ok (1/0), breaker failure type (timeout | error | ''), duration ms, actor, now ISO, failure
--   reason, audit metadata JSON, cache ttl s (0 = do not store), index in KEYS of its cache entry
--   (0 = none), cache entry, hook decision (1/0), decision, decision reason, params JSON
-- Returns one breaker transition per call: 'opened', 'closed' or ''.
local event = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local breaker = ARGV[2] == '1'
local audit_maxlen, audit_ttl = ARGV[7], ARGV[8]
local n = tonumber(ARGV[12])

local added = {}          -- KEYS[10] field -> increment, written once at the end
local added_order = {}
local function count(field)
  if not added[field] then
    added[field] = 0
    added_order[#added_order + 1] = field
  end
  added[field] = added[field] + 1
end

-- Keys living `ttl` seconds after their last write get the TTL set again only once it has run
-- down by a tenth (at most a minute), as lua/exactly_once_delivery.lua does for streams: TTL is
-- a read, EXPIRE a write that the append-only file records every time.
local function renew(key, ttl)
  ttl = tonumber(ttl)
  if redis.call('TTL', key) < ttl - math.min(60, math.floor(ttl / 10)) then
    redis.call('EXPIRE', key, ttl)
  end
end

local audited = false
local function audit(action, actor, result, reason, metadata, iso)
  redis.call('XADD', KEYS[16], 'MAXLEN', '~', audit_maxlen, '*', 'action', action, 'actor', actor,
    'resource', event, 'result', result, 'reason', reason, 'metadata', metadata, 'timestamp', iso)
  audited = true
end

local successes, failures = 0, 0
local failures_by_type = {}
local ok_calls, failed_calls = 0, 0
local hook_calls, cache_sets = 0, 0
local measured = redis.call('HMGET', KEYS[13], 'count', 'avgLatency')
local calls_seen = tonumber(measured[1] or '0')
local avg = tonumber(measured[2] or '0')
local last_iso = ''
local transitions = {}
-- What this run knows of the breaker's keys, so a stretch of successes reads and resets them
-- once, not once per call (keys cannot expire while a script runs).
local streak_clear = false  -- KEYS[4] deleted by this run and not counted up since
local tripped = nil         -- KEYS[2] exists (nil: not read yet)

for i = 1, n do
  local b = 12 + (i - 1) * 14
  local ok = ARGV[b + 1] == '1'
  local ftype = ARGV[b + 2]
  local actor, iso = ARGV[b + 4], ARGV[b + 5]
  local metadata = ARGV[b + 7]
  local transition = ''
  if breaker then
    if ftype == '' then
      -- Any call that is not a breaker failure resets the consecutive-failure count.
      if not streak_clear then
        redis.call('DEL', KEYS[4])
        streak_clear = true
      end
      if tripped == nil then tripped = redis.call('EXISTS', KEYS[2]) == 1 end
      if tripped and redis.call('EXISTS', KEYS[1]) == 0 then
        local s = redis.call('INCR', KEYS[5])
        redis.call('EXPIRE', KEYS[5], 3600)
        if s >= tonumber(ARGV[6]) then
          local last = tonumber(redis.call('GET', KEYS[6]) or now)
          local recovery = now - last
          local prior = tonumber(redis.call('HGET', KEYS[11], 'avgRecoveryTime') or '0')
          if prior > 0 then recovery = math.floor((prior + recovery) / 2) end
          redis.call('HSET', KEYS[11], 'lastRecoveryTime', now - last, 'avgRecoveryTime', recovery)
          redis.call('DEL', KEYS[2], KEYS[3], KEYS[5], KEYS[6], KEYS[7])
          tripped = false
          count('circuit:' .. event .. ':closed')
          audit('circuit.closed', actor, 'success', 'Recovered after ' .. (now - last) .. 'ms', metadata, iso)
          transition = 'closed'
        end
      end
      count('circuit:' .. event .. ':success')
      successes = successes + 1
    else
      local type_key = ftype == 'timeout' and KEYS[8] or KEYS[9]
      redis.call('INCR', type_key)
      redis.call('EXPIRE', type_key, 3600)
      failures = failures + 1
      failures_by_type[ftype] = (failures_by_type[ftype] or 0) + 1
      redis.call('SET', KEYS[6], now, 'EX', 3600)
      if redis.call('GET', KEYS[1]) ~= 'OPEN' then
        local half = redis.call('EXISTS', KEYS[2]) == 1
        tripped = half
        local streak = redis.call('INCR', KEYS[4])
        streak_clear = false
        redis.call('EXPIRE', KEYS[4], 3600)
        if half or streak >= tonumber(ARGV[3]) then
          local trips = redis.call('INCR', KEYS[2])
          tripped = true
          local open_ms = math.min(math.floor(tonumber(ARGV[4]) * 1.5 ^ (trips - 1)), tonumber(ARGV[5]))
          redis.call('EXPIRE', KEYS[2], 3600 + math.ceil(open_ms / 1000))
          redis.call('SET', KEYS[1], 'OPEN', 'PX', open_ms)
          redis.call('SET', KEYS[7], now, 'PX', open_ms)
          redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
          streak_clear = true
          local why = half and 'Half-open trial failed' or ('Circuit opened due to ' .. streak .. ' failures')
          redis.call('LPUSH', KEYS[12], cjson.encode({handler = event, severity = 'HIGH', message = why,
            timestamp = iso, openMs = open_ms}))
          redis.call('LTRIM', KEYS[12], 0, 99)
          redis.call('EXPIRE', KEYS[12], 86400)
          redis.call('HINCRBY', KEYS[11], 'totalTrips', 1)
          count('circuit:' .. event .. ':opened')
          audit('circuit.opened', actor, 'blocked', why .. '; open for ' .. open_ms .. 'ms', metadata, iso)
          transition = 'opened'
        end
      end
      count('circuit:' .. event .. ':failure')
    end
  end

  if ARGV[11] == '1' then
    count('timeout:' .. event .. ':' .. (ftype == 'timeout' and 'exceeded' or 'completed'))
  end
  if ftype == 'timeout' then
    audit('timeout.exceeded', actor, 'failure', 'Execution exceeded the handler timeout', metadata, iso)
  end

  -- Measured layer (SPEC §3.5): call count and running mean latency, stored rounded after every
  -- call as a one-call run would store it.
  calls_seen = calls_seen + 1
  avg = tonumber(string.format('%.3f', (avg * (calls_seen - 1) + tonumber(ARGV[b + 3])) / calls_seen))
  last_iso = iso
  if ok then ok_calls = ok_calls + 1 else failed_calls = failed_calls + 1 end

  -- Audit layer (SPEC §3.6): the call, and for hooks the decision.
  audit(event, actor, ok and 'success' or 'failure', ARGV[b + 6], metadata, iso)
  if ARGV[b + 11] == '1' then
    redis.call('XADD', KEYS[17], 'MAXLEN', '~', audit_maxlen, '*', 'tool', string.sub(event, 6),
      'decision', ARGV[b + 12], 'reason', ARGV[b + 13], 'timestamp', iso, 'params', ARGV[b + 14])
    redis.call('XADD', KEYS[18], 'MAXLEN', '~', audit_maxlen, '*', 'decision', ARGV[b + 12],
      'reason', ARGV[b + 13], 'timestamp', iso)
    hook_calls = hook_calls + 1
  end

  -- Cache write after a miss (successful real answers only; never fallbacks).
  local ttl = tonumber(ARGV[b + 8])
  local entry = tonumber(ARGV[b + 9])
  if ok and ttl > 0 and entry > 0 then
    redis.call('SET', KEYS[entry], ARGV[b + 10], 'EX', ttl)
    cache_sets = cache_sets + 1
  end
  transitions[i] = transition
end

-- What only adds up, once per key.
if breaker then
  if successes > 0 then redis.call('HINCRBY', KEYS[11], 'totalSuccesses', successes) end
  if failures > 0 then
    redis.call('HINCRBY', KEYS[11], 'totalFailures', failures)
    for ftype, k in pairs(failures_by_type) do
      redis.call('HINCRBY', KEYS[11], 'failures:' .. ftype, k)
    end
  end
  local v = redis.call('HMGET', KEYS[11], 'totalSuccesses', 'totalFailures')
  local s, f = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  if s + f > 0 then
    redis.call('HSET', KEYS[11], 'successRate', string.format('%.2f', s * 100 / (s + f)))
  end
  renew(KEYS[11], 86400)
end
if #added_order > 0 then
  for _, field in ipairs(added_order) do
    redis.call('HINCRBY', KEYS[10], field, added[field])
  end
  renew(KEYS[10], 3600)
end

redis.call('HSET', KEYS[13], 'count', calls_seen, 'avgLatency', string.format('%.3f', avg), 'lastCalled', last_iso)
if ok_calls > 0 then redis.call('HINCRBY', KEYS[13], 'success', ok_calls) end
if failed_calls > 0 then redis.call('HINCRBY', KEYS[13], 'errors', failed_calls) end
renew(KEYS[13], 3600)
redis.call('HINCRBY', KEYS[14], 'events:total', n)
renew(KEYS[14], 300)

-- Registry metrics (SPEC §3.9, with §16 row 30: call counters only; Lua owns task counts).
if ok_calls > 0 then redis.call('HINCRBY', KEYS[15], ARGV[9] .. ':success', ok_calls) end
if failed_calls > 0 then redis.call('HINCRBY', KEYS[15], ARGV[9] .. ':failure', failed_calls) end
renew(KEYS[15], 3600)
local dm = ARGV[10]
if dm == 'hook' and ok_calls > 0 then
  redis.call('HINCRBY', KEYS[20], 'processed', ok_calls)
  renew(KEYS[20], 3600)
elseif dm == 'task' then
  redis.call('HINCRBY', KEYS[20], 'calls', n)
elseif dm == 'health' then
  redis.call('HSET', KEYS[20], 'lastCheck', now)
  renew(KEYS[20], 300)
elseif dm == 'scaling' then
  redis.call('HINCRBY', KEYS[20], 'instances', n)
  renew(KEYS[20], 300)
end

if audited then renew(KEYS[16], audit_ttl) end
if hook_calls > 0 then
  renew(KEYS[17], audit_ttl)
  renew(KEYS[18], audit_ttl)
end
if cache_sets > 0 then
  redis.call('HINCRBY', KEYS[19], 'sets', cache_sets)
  redis.call('HINCRBY', KEYS[19], 'sets:handler', cache_sets)
  renew(KEYS[19], 3600)
end
return transitions
