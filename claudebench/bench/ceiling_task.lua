-- claudebench/bench/ceiling_task.lua: the least Redis work a task.create can do (PERF.md, C-asgi-redis).
-- Bench only: product scripts live in lua/. One call stores the task, queues it and announces it.
-- KEYS[1] task hash   KEYS[2] pending queue (zset)   KEYS[3] event stream
-- ARGV[1] task id   ARGV[2] text   ARGV[3] priority   ARGV[4] created at, ISO
-- ARGV[5] event JSON   ARGV[6] stream max length (approximate)   ARGV[7] pub/sub channel
-- Returns 1.
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'text', ARGV[2], 'status', 'pending',
           'priority', ARGV[3], 'createdAt', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'event', ARGV[5])
redis.call('PUBLISH', ARGV[7], ARGV[5])
return 1
