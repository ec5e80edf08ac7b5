-- lua/task_create.lua: store a new pending task and put it on the pending queue.
-- KEYS[1] cb:task:{id} (hash)   KEYS[2] cb:queue:tasks:pending (zset)
-- KEYS[3] cb:counter:task:lastid (string)   KEYS[4] cb:metrics:queues (hash)
-- ARGV[1] id digits (the N of t-N, proposed by the caller)   ARGV[2] id   ARGV[3] text
-- ARGV[4] priority   ARGV[5] createdAt ISO   ARGV[6] metadata JSON   ARGV[7] now, epoch ms
-- Returns {1, id}, or {0, 'retry', next candidate} when N is not above the last id handed out:
-- ids stay `t-<digits>`, strictly increasing across every process (SPEC §16 row 18).
local wanted = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if wanted <= last or redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, 'retry', math.max(last, wanted) + 1}
end
redis.call('SET', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1],
  'id', ARGV[2], 'text', ARGV[3], 'priority', ARGV[4], 'status', 'pending',
  'createdAt', ARGV[5], 'updatedAt', ARGV[5], 'metadata', ARGV[6],
  'assignedTo', '', 'result', '', 'error', '', 'createdAtMs', ARGV[7])
redis.call('ZADD', KEYS[2], -tonumber(ARGV[4]), ARGV[2])
redis.call('HINCRBY', KEYS[4], 'totalTasks', 1)
redis.call('HINCRBY', KEYS[4], 'pendingTasks', 1)
redis.call('HSETNX', KEYS[4], 'throughput', '0')
return {1, ARGV[2]}
