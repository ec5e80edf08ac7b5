-- lua/task_update.lua: change a task's text, status, priority or metadata, keeping queues right.
-- KEYS[1] cb:task:{id} (hash)   KEYS[2] cb:queue:tasks:pending (zset)
-- KEYS[3] cb:queue:instance:{assignee read by the caller} (list)
-- ARGV[1] task id   ARGV[2] assignee the caller read ('' for none)
-- ARGV[3] metadata string the caller read and merged into (compared, so a concurrent change retries)
-- ARGV[4] updates JSON {text?, status?, priority?, metadata? (merged JSON string)}   ARGV[5] now ISO
-- Returns {1, field, value, ...} (the whole hash after the change), {0, 'retry'} when the assignee
-- or metadata changed since the caller read them, or {0, message}.
-- Policy (SPEC §9.2): only a completed non-project task refuses a new status. A task sits in the
-- pending queue iff it is pending and unassigned, in its instance's queue iff assigned and open.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 'Task not found'}
end
local cur = redis.call('HMGET', KEYS[1], 'status', 'assignedTo', 'priority', 'metadata')
local status, assignee = cur[1] or 'pending', cur[2] or ''
if assignee ~= ARGV[2] or (cur[4] or '') ~= ARGV[3] then
  return {0, 'retry'}
end
local u = cjson.decode(ARGV[4])
local new_status = u.status or status
if new_status ~= status and status == 'completed' then
  local ok, meta = pcall(cjson.decode, cur[4] or '')
  local project = ok and type(meta) == 'table' and (meta.projectId ~= nil or meta.type == 'project')
  if not project then
    return {0, 'Cannot change status of completed task to ' .. new_status}
  end
end
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[5])
if u.text then redis.call('HSET', KEYS[1], 'text', u.text) end
if u.metadata then redis.call('HSET', KEYS[1], 'metadata', u.metadata) end
local priority = tonumber(cur[3] or '50')
if u.priority then
  priority = u.priority
  redis.call('HSET', KEYS[1], 'priority', u.priority)
end
if u.status then
  redis.call('HSET', KEYS[1], 'status', new_status)
  if new_status == 'completed' or new_status == 'failed' then
    if new_status ~= status then redis.call('HSET', KEYS[1], 'completedAt', ARGV[5]) end
  else
    redis.call('HDEL', KEYS[1], 'completedAt')
  end
end
if new_status == 'pending' and assignee == '' then
  redis.call('ZADD', KEYS[2], -priority, ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if assignee ~= '' then
  if new_status == 'completed' or new_status == 'failed' then
    redis.call('LREM', KEYS[3], 0, ARGV[1])
  elseif status == 'completed' or status == 'failed' then
    -- reopened while assigned: back on its instance's queue, once (as hydration would put it)
    redis.call('LREM', KEYS[3], 0, ARGV[1])
    redis.call('RPUSH', KEYS[3], ARGV[1])
  end
end
local reply = {1}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do reply[#reply + 1] = v end
return reply
