-- lua/partition_event.lua: keep the last 1000 events of one partition, in publish order.
-- KEYS[1] cb:partition:{partitionKey} (list)
-- ARGV[1] event id   ARGV[2] epoch ms   ARGV[3] envelope JSON
-- Returns {1, list length}.
local item = cjson.encode({id = ARGV[1], timestamp = tonumber(ARGV[2]), data = ARGV[3]})
redis.call('RPUSH', KEYS[1], item)
redis.call('LTRIM', KEYS[1], -1000, -1)
redis.call('EXPIRE', KEYS[1], 3600)
return {1, redis.call('LLEN', KEYS[1])}
