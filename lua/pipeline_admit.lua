-- lua/pipeline_admit.lua: everything the pipeline decides before a handler body runs, in one round
-- trip (SPEC §3.2 steps 3 and 5; §3.4 cache read, §3.8 rate limit, §3.10 breaker admission).
-- KEYS[1] cb:stream:{event} (request record)      KEYS[2] cb:ratelimit:{event}:{actor} (zset)
-- KEYS[3] cb:circuit:{event}:state                 KEYS[4] cb:circuit:{event}:trips
-- KEYS[5] cb:circuit:{event}:allowed               KEYS[6] cb:circuit:{event}:rejected
-- KEYS[7] cb:metrics:counters                      KEYS[8] cb:audit:general
-- KEYS[9] cb:cache:handler:{event}:{digest}        KEYS[10] cb:metrics:cache:handler
-- KEYS[11] cb:gate:{call event id}: set when the call is let through and ARGV[17] is 1, for
--          writes sent in the same round trip (lua/gated_writes.lua)
-- KEYS[12..] cb:cache:version:{scope}, one per cache scope of the handler
-- ARGV[1] event   ARGV[2] request envelope JSON   ARGV[3] stream maxlen   ARGV[4] stream ttl, s
-- ARGV[5] rate limit (0 = none)   ARGV[6] window, ms   ARGV[7] random member suffix
-- ARGV[8] breaker on (1/0)   ARGV[9] half-open trial limit   ARGV[10] half-open window, ms
-- ARGV[11] cache on (1/0)   ARGV[12] actor   ARGV[13] now, ISO   ARGV[14] audit metadata JSON
-- ARGV[15] audit maxlen   ARGV[16] audit ttl, s   ARGV[17] gate on (1/0)   ARGV[18] gate ttl, ms
-- Returns {'hit', body} | {'ok', mode ('closed'|'half'), cache tag} | {'limited', count}
--       | {'open', ''} | {'half_full', ''}.
-- Time comes from the Redis server (TIME), so every process shares one clock for windows.
local event = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- A key that lives `ttl` seconds after its last write gets its TTL set again only once it has run
-- down by a tenth of it (at most a minute), as lua/exactly_once_delivery.lua does for streams: TTL
-- is a read, EXPIRE a write that the append-only file records on every call.
local function renew(key, ttl)
  ttl = tonumber(ttl)
  if redis.call('TTL', key) < ttl - math.min(60, math.floor(ttl / 10)) then
    redis.call('EXPIRE', key, ttl)
  end
end

local function count(field)
  redis.call('HINCRBY', KEYS[7], field, 1)
  renew(KEYS[7], 3600)
end

local function audit(action, result, reason)
  redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[15], '*', 'action', action, 'actor', ARGV[12],
    'resource', event, 'result', result, 'reason', reason, 'metadata', ARGV[14], 'timestamp', ARGV[13])
  redis.call('EXPIRE', KEYS[8], ARGV[16])
end

-- SPEC §3.2 step 3: the request record, whatever the layers decide.
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'data', ARGV[2])
renew(KEYS[1], ARGV[4])

-- Cache (outermost layer): a hit skips every other layer. Entries are '<tag>|<json>', where the
-- tag is the scope generations seen when the value was computed; a writer bumping any of them
-- makes the entry stale.
local tag = ''
if ARGV[11] == '1' then
  local parts = {}
  for i = 12, #KEYS do
    parts[#parts + 1] = redis.call('GET', KEYS[i]) or '0'
  end
  tag = table.concat(parts, '.')
  local stored = redis.call('GET', KEYS[9])
  local field = 'misses'
  local body = nil
  if stored then
    local bar = string.find(stored, '|', 1, true)
    if bar and string.sub(stored, 1, bar - 1) == tag then
      body = string.sub(stored, bar + 1)
      field = 'hits'
    end
  end
  redis.call('HINCRBY', KEYS[10], field, 1)
  redis.call('HINCRBY', KEYS[10], field .. ':' .. event, 1)
  local hm = redis.call('HMGET', KEYS[10], 'hits', 'misses')
  local hits, misses = tonumber(hm[1] or '0'), tonumber(hm[2] or '0')
  redis.call('HSET', KEYS[10], 'hitRate', string.format('%.2f', hits * 100 / (hits + misses)))
  renew(KEYS[10], 3600)
  if body then
    return {'hit', body}
  end
end

-- Rate limit (sliding window log): count and record in one step, before the body runs.
local limit = tonumber(ARGV[5])
if limit > 0 then
  local window = tonumber(ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  local n = redis.call('ZCARD', KEYS[2])
  if n >= limit then
    count('ratelimit:' .. event .. ':blocked')
    audit('ratelimit.exceeded', 'blocked',
      'Rate limit exceeded: ' .. n .. '/' .. limit .. ' in ' .. window .. 'ms')
    return {'limited', n}
  end
  redis.call('ZADD', KEYS[2], now, now .. '-' .. ARGV[7])
  redis.call('PEXPIRE', KEYS[2], window)
  count('ratelimit:' .. event .. ':allowed')
end

-- Circuit breaker admission (SPEC §3.10 recommended machine). OPEN is a key with a PX TTL of
-- the open window; once it has expired while the trip record remains, the breaker is HALF_OPEN.
local mode = 'closed'
if ARGV[8] == '1' then
  if redis.call('GET', KEYS[3]) == 'OPEN' then
    redis.call('INCR', KEYS[6])
    redis.call('EXPIRE', KEYS[6], 3600)
    count('circuit:' .. event .. ':rejected')
    audit('circuit.open', 'blocked', 'Circuit open for ' .. event)
    return {'open', ''}
  end
  if redis.call('EXISTS', KEYS[4]) == 1 then
    local trial = redis.call('INCR', KEYS[5])
    if trial == 1 then
      redis.call('PEXPIRE', KEYS[5], ARGV[10])
      count('circuit:' .. event .. ':half_open')
      audit('circuit.half-open', 'allowed', 'Open window over; admitting trial calls')
    end
    if trial > tonumber(ARGV[9]) then
      redis.call('INCR', KEYS[6])
      redis.call('EXPIRE', KEYS[6], 3600)
      count('circuit:' .. event .. ':rejected')
      audit('circuit.open', 'blocked', 'Circuit half-open limit exceeded for ' .. event)
      return {'half_full', ''}
    end
    mode = 'half'
  end
end
if ARGV[17] == '1' then
  redis.call('SET', KEYS[11], '1', 'PX', ARGV[18])
end
return {'ok', mode, tag}
