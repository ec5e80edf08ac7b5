-- lua/batch_release.lua: release a batch lock when processing ends (compare-and-delete, SPEC §7.7).
-- KEYS[1] cb:batch:{batchId}:lock   KEYS[2] cb:batch:lock   KEYS[3] cb:batch:current
-- ARGV[1] processor id   ARGV[2] batch id
-- Returns {1, released (0|1)}.
local released = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  released = 1
end
if redis.call('GET', KEYS[3]) == ARGV[2] and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return {1, released}
