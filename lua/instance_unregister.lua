-- lua/instance_unregister.lua: remove an instance and hand its unfinished tasks back (SPEC §16 row 25).
-- KEYS[1] cb:instance:{id}   KEYS[2] cb:instances:active   KEYS[3] cb:capabilities:{id}
-- KEYS[4] cb:gossip:health   KEYS[5] cb:queue:instance:{id}   KEYS[6] cb:queue:tasks:pending
-- KEYS[7] cb:leader:current   KEYS[8] cb:leader:lock
-- KEYS[9..8+ARGV[4]] cb:role:{role} sets and cb:specialists:{type} of the stored roles
-- KEYS[9+ARGV[4]..] cb:task:{taskId} hashes the caller found assigned to the instance
-- ARGV[1] id   ARGV[2] roles JSON as the caller read it ('' when no hash)   ARGV[3] now ISO
-- ARGV[4] number of set keys   ARGV[5] unassign reason
-- Tasks still assigned to the instance with status pending/in_progress go back to the pending
-- queue (score -priority, SPEC §16 row 24), unassigned; finished ones are left alone.
-- Returns {1, existed, requeued count, requeued ids...} or {0, 'retry'} if the roles changed.
local id = ARGV[1]
local existed = redis.call('EXISTS', KEYS[1])
if (redis.call('HGET', KEYS[1], 'roles') or '') ~= ARGV[2] then
  return {0, 'retry'}
end
local nsets = tonumber(ARGV[4])
local requeued = {}
for i = 9 + nsets, #KEYS do
  local t = redis.call('HMGET', KEYS[i], 'id', 'assignedTo', 'status', 'priority')
  if t[1] and t[2] == id and (t[3] == 'pending' or t[3] == 'in_progress') then
    redis.call('HSET', KEYS[i], 'status', 'pending', 'assignedTo', '', 'updatedAt', ARGV[3],
      'unassignedAt', ARGV[3], 'unassignReason', ARGV[5])
    redis.call('HDEL', KEYS[i], 'assignedAt')
    redis.call('ZADD', KEYS[6], -tonumber(t[4] or '50'), t[1])
    requeued[#requeued + 1] = t[1]
  end
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[5])
redis.call('SREM', KEYS[2], id)
redis.call('HDEL', KEYS[4], id)
for i = 9, 8 + nsets do
  redis.call('SREM', KEYS[i], id)
end
if redis.call('GET', KEYS[7]) == id then redis.call('DEL', KEYS[7]) end
if redis.call('GET', KEYS[8]) == id then redis.call('DEL', KEYS[8]) end
local reply = {1, existed, #requeued}
for _, t in ipairs(requeued) do reply[#reply + 1] = t end
return reply
