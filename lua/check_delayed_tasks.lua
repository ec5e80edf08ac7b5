-- lua/check_delayed_tasks.lua: pending, unassigned tasks that have waited at least the delay (SPEC §7.13).
-- KEYS[1] cb:queue:tasks:pending   KEYS[2..] cb:task:{taskId} in queue (priority) order, as read
-- ARGV[1] now, ms   ARGV[2] delay, ms   ARGV[3] max tasks
-- Returns the ids, in queue order.
local now, delay, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 2, #KEYS do
  if #out >= max then break end
  local t = redis.call('HMGET', KEYS[i], 'id', 'status', 'assignedTo', 'createdAtMs')
  if t[1] and t[2] == 'pending' and (t[3] or '') == '' and redis.call('ZSCORE', KEYS[1], t[1])
      and now - tonumber(t[4] or now) >= delay then
    out[#out + 1] = t[1]
  end
end
return out
