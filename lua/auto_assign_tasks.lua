-- lua/auto_assign_tasks.lua: offer a newly registered worker the best task it may take (SPEC §7.14,
-- §16 row 22): skip ineligible candidates, take the task off the pending queue, status in_progress.
-- KEYS[1] cb:queue:tasks:pending   KEYS[2] cb:instance:{worker}   KEYS[3] cb:queue:instance:{worker}
-- KEYS[4] cb:metrics:queues   KEYS[5] cb:history:assignments
-- KEYS[6..] cb:task:{taskId} candidates in queue (priority) order, as the caller read them
-- ARGV[1] worker id   ARGV[2] now, ms   ARGV[3] now ISO
-- Returns {1, taskId, pending left} or {0, pending count, reason}.
local worker = ARGV[1]
local roles = redis.call('HGET', KEYS[2], 'roles')
local is_worker = false
if roles then
  local ok, list = pcall(cjson.decode, roles)
  if ok then for _, r in ipairs(list) do if r == 'worker' then is_worker = true end end end
end
if not is_worker then
  return {0, 0, 'No workers found'}
end
local pending = redis.call('ZCARD', KEYS[1])
if pending == 0 then
  return {0, 0, 'No tasks in queue'}
end
for i = 6, #KEYS do
  local t = redis.call('HMGET', KEYS[i], 'id', 'status', 'assignedTo', 'deny', 'createdAtMs')
  local ok = t[1] and t[2] == 'pending' and (t[3] or '') == '' and redis.call('ZSCORE', KEYS[1], t[1])
  if ok and t[4] and t[4] ~= '' then
    for _, d in ipairs(cjson.decode(t[4])) do if d == worker then ok = false end end
  end
  if ok and redis.call('LPOS', KEYS[3], t[1]) then ok = false end
  if ok then
    redis.call('ZREM', KEYS[1], t[1])
    redis.call('RPUSH', KEYS[3], t[1])
    redis.call('HSET', KEYS[i], 'assignedTo', worker, 'status', 'in_progress', 'assignedAt', ARGV[3],
      'updatedAt', ARGV[3])
    if t[5] then
      local wait = tonumber(ARGV[2]) - tonumber(t[5])
      local total = redis.call('HINCRBY', KEYS[4], 'totalWaitTime', wait)
      local count = redis.call('HINCRBY', KEYS[4], 'waitCount', 1)
      redis.call('HSET', KEYS[4], 'avgWaitTime', tostring(math.floor(total / count)))
      if tonumber(redis.call('HGET', KEYS[4], 'pendingTasks') or '0') > 0 then
        redis.call('HINCRBY', KEYS[4], 'pendingTasks', -1)
      end
      redis.call('HINCRBY', KEYS[4], 'assignedTasks', 1)
    end
    redis.call('LPUSH', KEYS[5], cjson.encode({taskId = t[1], instanceId = worker, timestamp = tonumber(ARGV[2])}))
    redis.call('LTRIM', KEYS[5], 0, 999)
    redis.call('EXPIRE', KEYS[5], 86400)
    return {1, t[1], pending - 1}
  end
end
return {0, pending, 'No eligible task'}
