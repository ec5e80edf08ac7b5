-- lua/update_session_metrics.lua: per-session and global hook counters (SPEC §7.27).
-- KEYS[1] cb:metrics:session:{sid} (hash)   KEYS[2] cb:metrics:global:hooks (hash)
-- ARGV[1] session id   ARGV[2] hook type   ARGV[3] now, epoch ms
-- Returns {1, count of this hook type, total count}. eventsPerMinute is stored as a string.
local n = redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
local total = redis.call('HINCRBY', KEYS[1], 'total', 1)
redis.call('HSETNX', KEYS[1], 'firstEventTime', ARGV[3])
redis.call('HSET', KEYS[1], 'lastEventTime', ARGV[3])
local first = tonumber(redis.call('HGET', KEYS[1], 'firstEventTime'))
local elapsed = (tonumber(ARGV[3]) - first) / 1000
if elapsed > 0 then
  redis.call('HSET', KEYS[1], 'eventsPerMinute', string.format('%.2f', total / elapsed * 60))
end
redis.call('EXPIRE', KEYS[1], 86400)
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HINCRBY', KEYS[2], 'total', 1)
redis.call('EXPIRE', KEYS[2], 604800)
return {1, n, total}
