-- lua/task_complete.lua: mark an assigned task completed and record who finished it.
-- KEYS[1] cb:task:{id} (hash)   KEYS[2] cb:queue:instance:{assignee} (list)
-- KEYS[3] cb:metrics:instance:{assignee} (hash)   KEYS[4] cb:metrics:queues (hash)
-- KEYS[5] cb:history:task:{id}:completions (list)
-- ARGV[1] task id   ARGV[2] assignee the caller read   ARGV[3] result JSON ('null' when none)
-- ARGV[4] now ISO   ARGV[5] now, epoch ms   ARGV[6] completed by
-- Returns {1, status, duration ms}, {0, 'retry'} if the assignee changed meanwhile, or {0, message}.
-- A missing result still completes the task (SPEC §16 row 20); failing is task.update's job.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 'Task not found'}
end
local cur = redis.call('HMGET', KEYS[1], 'assignedTo', 'status', 'createdAtMs')
local assignee, status = cur[1] or '', cur[2] or 'pending'
if assignee ~= ARGV[2] then
  return {0, 'retry'}
end
if assignee == '' then
  return {0, 'Task not assigned'}
end
if status == 'completed' or status == 'failed' then
  return {0, 'Task already completed'}
end
local now = tonumber(ARGV[5])
local duration = 0
if cur[3] then duration = math.max(0, now - tonumber(cur[3])) end
redis.call('HSET', KEYS[1], 'status', 'completed', 'completedAt', ARGV[4], 'updatedAt', ARGV[4],
  'result', ARGV[3], 'duration', duration)
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('HINCRBY', KEYS[3], 'tasksCompleted', 1)
local completed = redis.call('HINCRBY', KEYS[4], 'completedTasks', 1)
redis.call('HINCRBY', KEYS[4], 'tasksCompleted', 1)
if tonumber(redis.call('HGET', KEYS[4], 'assignedTasks') or '0') > 0 then
  redis.call('HINCRBY', KEYS[4], 'assignedTasks', -1)
end
local now_s = math.floor(now / 1000)
local first = tonumber(redis.call('HGET', KEYS[4], 'firstCompletionTime') or '0')
if first == 0 then
  redis.call('HSET', KEYS[4], 'firstCompletionTime', now_s, 'lastCompletionTime', now_s, 'throughput', '0')
else
  local elapsed = now_s - first
  local throughput = completed
  if elapsed > 0 then throughput = completed / elapsed end
  redis.call('HSET', KEYS[4], 'lastCompletionTime', now_s, 'throughput', string.format('%.4f', throughput))
end
redis.call('RPUSH', KEYS[5], cjson.encode({status = 'completed', completedAt = ARGV[4],
  completedBy = ARGV[6], duration = duration}))
return {1, 'completed', duration}
