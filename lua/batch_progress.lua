-- lua/batch_progress.lua: advance a batch's progress, only by the lock holder (SPEC §7.7).
-- KEYS[1] cb:batch:{batchId}:lock   KEYS[2] cb:batch:{batchId}:progress   KEYS[3] cb:batch:progress
-- KEYS[4] cb:batch:current
-- ARGV[1] processor id   ARGV[2] items processed   ARGV[3] batch id   ARGV[4] lock ttl, s   ARGV[5] progress ttl, s
-- Returns {1, processed} or {0, 'Batch lock lost'}.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, 'Batch lock lost'}
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HSET', KEYS[2], 'processed', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
if redis.call('GET', KEYS[4]) == ARGV[3] then
  redis.call('HSET', KEYS[3], 'processed', ARGV[2])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
return {1, tonumber(ARGV[2])}
