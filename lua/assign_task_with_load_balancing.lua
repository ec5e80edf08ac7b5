-- lua/assign_task_with_load_balancing.lua: push one pending task to the least-loaded live worker
-- (SPEC §7.2, §8.8), as task.assign would: assignedTo set, status stays pending, one queue entry.
-- KEYS[1] cb:leader:current   KEYS[2] cb:queue:tasks:pending   KEYS[3] cb:history:assignments
-- KEYS[4] cb:task:{taskId}   then per candidate three keys: cb:instance:{id}, cb:queue:instance:{id},
-- cb:capacity:{id}
-- ARGV[1] task id   ARGV[2] fence: expected leader ('' = none)   ARGV[3] now, ms   ARGV[4] now ISO
-- ARGV[5] stale after, ms   ARGV[6] default capacity
-- A candidate is eligible when ACTIVE, fresh, a 'worker' by role, not a server and not on the
-- task's deny list. Returns {1, instance id, new queue depth} or {0, reason}.
if ARGV[2] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return {0, 'not leader'}
end
local t = redis.call('HMGET', KEYS[4], 'id', 'status', 'assignedTo', 'deny')
if not t[1] or t[2] ~= 'pending' or (t[3] or '') ~= '' or not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {0, 'Task not assignable'}
end
local denied = {}
if t[4] and t[4] ~= '' then
  for _, d in ipairs(cjson.decode(t[4])) do denied[d] = true end
end
local now, stale, default_cap = tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])
local best, best_load, best_queue = nil, nil, nil
for i = 5, #KEYS, 3 do
  local h = redis.call('HMGET', KEYS[i], 'id', 'status', 'health', 'lastSeen', 'kind', 'roles')
  local ok = h[1] and h[2] == 'ACTIVE' and h[3] ~= 'unhealthy' and h[5] ~= 'server' and h[4]
    and now - tonumber(h[4]) <= stale and not denied[h[1]]
  if ok then
    local is_worker = false
    local decoded, roles = pcall(cjson.decode, h[6] or '[]')
    if decoded then for _, r in ipairs(roles) do if r == 'worker' then is_worker = true end end end
    ok = is_worker
  end
  if ok then
    local load = redis.call('LLEN', KEYS[i + 1])
    local cap = tonumber(redis.call('HGET', KEYS[i + 2], 'maxTasks') or '') or default_cap
    if load < cap and (best_load == nil or load < best_load) then
      best, best_load, best_queue = h[1], load, KEYS[i + 1]
    end
  end
end
if not best then
  return {0, 'No eligible worker'}
end
redis.call('LREM', best_queue, 0, ARGV[1])
redis.call('RPUSH', best_queue, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[4], 'assignedTo', best, 'assignedAt', ARGV[4], 'updatedAt', ARGV[4])
redis.call('LPUSH', KEYS[3], cjson.encode({taskId = ARGV[1], instanceId = best, timestamp = now}))
redis.call('LTRIM', KEYS[3], 0, 999)
redis.call('EXPIRE', KEYS[3], 86400)
return {1, best, best_load + 1}
