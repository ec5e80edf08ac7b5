-- lua/task_assign.lua: assign a task to a live instance (push model; status stays pending).
-- KEYS[1] cb:task:{id} (hash)   KEYS[2] cb:queue:tasks:pending (zset)   KEYS[3] cb:instance:{iid}
-- KEYS[4] cb:queue:instance:{iid} (list)   KEYS[5] cb:history:task:{id}:assignments (list)
-- KEYS[6] cb:metrics:instance:{iid} (hash)
-- ARGV[1] task id   ARGV[2] instance id   ARGV[3] now ISO   ARGV[4] assigned by
-- Returns {1, previous assignee or ''} or {0, message}. Re-assigning to the same instance keeps
-- exactly one queue entry (SPEC §16 row 29).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 'Task not found: ' .. ARGV[1]}
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {0, 'Instance not found: ' .. ARGV[2]}
end
local inst = redis.call('HMGET', KEYS[3], 'status', 'health')
local state = inst[1]
if not state or state == '' then state = inst[2] or '' end
if state == 'OFFLINE' or state == 'unhealthy' or inst[2] == 'unhealthy' then
  return {0, 'Instance ' .. ARGV[2] .. ' is not available (status: ' .. state .. ')'}
end
local cur = redis.call('HMGET', KEYS[1], 'assignedTo', 'status')
local previous = cur[1] or ''
if previous ~= '' and previous ~= ARGV[2] then
  return {0, 'Task ' .. ARGV[1] .. ' is already assigned to ' .. previous .. '.'}
end
if cur[2] == 'completed' then
  return {0, 'Cannot assign task ' .. ARGV[1] .. ' with status completed'}
end
redis.call('HSET', KEYS[1], 'assignedTo', ARGV[2], 'status', 'pending',
  'assignedAt', ARGV[3], 'updatedAt', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LREM', KEYS[4], 0, ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('RPUSH', KEYS[5], cjson.encode({instanceId = ARGV[2], assignedAt = ARGV[3], assignedBy = ARGV[4]}))
if previous == '' then
  redis.call('HINCRBY', KEYS[6], 'assignedTasks', 1)
end
return {1, previous}
