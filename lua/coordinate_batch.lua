-- lua/coordinate_batch.lua: take (or keep) the lock of one batch (SPEC §7.7, §16 row 36).
-- KEYS[1] cb:batch:{batchId}:lock   KEYS[2] cb:batch:{batchId}:progress
-- KEYS[3] cb:batch:lock   KEYS[4] cb:batch:progress   KEYS[5] cb:batch:current  (latest-batch mirrors)
-- ARGV[1] processor id   ARGV[2] batch id   ARGV[3] total items   ARGV[4] lock ttl, s   ARGV[5] progress ttl, s
-- Returns {1, processor, processed so far} when the caller holds the lock (new or already its own)
-- or {0, current holder, processed} when another processor holds it.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return {0, holder, tonumber(redis.call('HGET', KEYS[2], 'processed') or '0')}
end
if holder == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return {1, holder, tonumber(redis.call('HGET', KEYS[2], 'processed') or '0')}
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
redis.call('HSET', KEYS[2], 'processed', 0, 'total', ARGV[3], 'processor', ARGV[1], 'batchId', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[4])
redis.call('HSET', KEYS[4], 'processed', 0, 'total', ARGV[3], 'processor', ARGV[1], 'batchId', ARGV[2])
redis.call('EXPIRE', KEYS[4], ARGV[5])
redis.call('SET', KEYS[5], ARGV[2], 'EX', ARGV[5])
return {1, ARGV[1], 0}
