-- lua/delete_task.lua: remove a task and everything Redis holds for it.
-- KEYS[1] cb:task:{id} (hash)   KEYS[2] cb:queue:tasks:pending (zset)
-- KEYS[3] cb:queue:instance:{assignee} (list)   KEYS[4] cb:metrics:task.delete (hash)
-- KEYS[5] cb:task:{id}:attachments (zset)   KEYS[6] cb:history:task:{id}:assignments (list)
-- KEYS[7] cb:history:task:{id}:completions (list)   KEYS[8..] cb:task:{id}:attachment:{key} hashes
-- ARGV[1] task id   ARGV[2] assignee the caller read   ARGV[3] now ISO
-- ARGV[4] number of attachments the caller read from the index
-- Returns {1, status}, {0, 'retry'} if the task changed meanwhile, or {0, 'Task not found'}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 'Task not found'}
end
local cur = redis.call('HMGET', KEYS[1], 'assignedTo', 'status')
local assignee, status = cur[1] or '', cur[2] or 'pending'
if assignee ~= ARGV[2] or redis.call('ZCARD', KEYS[5]) ~= tonumber(ARGV[4]) then
  return {0, 'retry'}
end
redis.call('ZREM', KEYS[2], ARGV[1])
if assignee ~= '' then
  redis.call('LREM', KEYS[3], 0, ARGV[1])
end
for i = 8, #KEYS do
  redis.call('DEL', KEYS[i])
end
redis.call('DEL', KEYS[5], KEYS[6], KEYS[7], KEYS[1])
redis.call('HINCRBY', KEYS[4], 'total', 1)
redis.call('HINCRBY', KEYS[4], status, 1)
redis.call('HSET', KEYS[4], 'lastDeleted', ARGV[3])
return {1, status}
