-- lua/task_unassign.lua: take a task back from its instance and return it to the pending queue.
-- KEYS[1] cb:task:{id} (hash)   KEYS[2] cb:queue:tasks:pending (zset)
-- KEYS[3] cb:queue:instance:{assignee} (list)   KEYS[4] cb:history:task:{id}:assignments (list)
-- KEYS[5] cb:metrics:instance:{assignee} (hash)
-- ARGV[1] task id   ARGV[2] assignee the caller read   ARGV[3] now ISO   ARGV[4] unassigned by
-- Returns {1, previous assignee}, {0, 'retry'} if the assignee changed meanwhile, or {0, message}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 'Task not found: ' .. ARGV[1]}
end
local cur = redis.call('HMGET', KEYS[1], 'assignedTo', 'status', 'priority')
local assignee, status = cur[1] or '', cur[2] or 'pending'
if assignee ~= ARGV[2] then
  return {0, 'retry'}
end
if assignee == '' then
  return {0, 'Task ' .. ARGV[1] .. ' is not currently assigned'}
end
if status == 'completed' or status == 'failed' then
  return {0, 'Cannot unassign task ' .. ARGV[1] .. ' with status ' .. status}
end
redis.call('HSET', KEYS[1], 'assignedTo', '', 'status', 'pending', 'updatedAt', ARGV[3],
  'unassignedAt', ARGV[3])
redis.call('HDEL', KEYS[1], 'assignedAt')
redis.call('ZADD', KEYS[2], -tonumber(cur[3] or '50'), ARGV[1])
redis.call('LREM', KEYS[3], 0, ARGV[1])
redis.call('RPUSH', KEYS[4], cjson.encode({instanceId = assignee, action = 'unassigned',
  unassignedAt = ARGV[3], unassignedBy = ARGV[4]}))
if tonumber(redis.call('HGET', KEYS[5], 'assignedTasks') or '0') > 0 then
  redis.call('HINCRBY', KEYS[5], 'assignedTasks', -1)
end
return {1, assignee}
