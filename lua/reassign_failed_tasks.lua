-- lua/reassign_failed_tasks.lua: return a dead instance's queued and in-progress tasks to the
-- pending queue, each with the dead instance on its deny list (SPEC §8.7, §16 row 23).
-- KEYS[1] cb:leader:current   KEYS[2] cb:instance:{dead}   KEYS[3] cb:queue:instance:{dead}
-- KEYS[4] cb:queue:tasks:pending   KEYS[5] cb:redistributed:from:{dead}
-- KEYS[6..] cb:task:{taskId} for every id of KEYS[3], in list order, as the caller read it
-- ARGV[1] dead id   ARGV[2] fence: the leader the caller believes it is ('' = no fence, manual call)
-- ARGV[3] now, ms   ARGV[4] stale after, ms   ARGV[5] now ISO   ARGV[6..] the task ids of KEYS[6..]
-- Fenced on the leader key: a caller that is no longer the leader changes nothing. An instance
-- that heartbeated since the caller looked is left alone; an expired hash is never re-created.
-- Returns {1, moved count, moved ids...}, {0, 'retry'} (queue changed), {0, 'not leader'}, {0, 'alive'}.
if ARGV[2] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return {0, 'not leader'}
end
local now, stale = tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[2], 'lastSeen', 'status')
if h[1] and h[2] ~= 'OFFLINE' and now - tonumber(h[1]) <= stale then
  return {0, 'alive'}
end
local queued = redis.call('LRANGE', KEYS[3], 0, -1)
if #queued ~= #KEYS - 5 then
  return {0, 'retry'}
end
for i, tid in ipairs(queued) do
  if ARGV[5 + i] ~= tid then return {0, 'retry'} end
end
local dead, moved = ARGV[1], {}
for i = 6, #KEYS do
  local t = redis.call('HMGET', KEYS[i], 'id', 'assignedTo', 'status', 'priority', 'deny')
  if t[1] and t[2] == dead and (t[3] == 'pending' or t[3] == 'in_progress') then
    local deny = {}
    if t[5] and t[5] ~= '' then deny = cjson.decode(t[5]) end
    local listed = false
    for _, d in ipairs(deny) do if d == dead then listed = true end end
    if not listed then deny[#deny + 1] = dead end
    redis.call('HSET', KEYS[i], 'status', 'pending', 'assignedTo', '', 'deny', cjson.encode(deny),
      'reassignedAt', ARGV[5], 'reassignReason', 'instance_failed', 'updatedAt', ARGV[5])
    redis.call('HDEL', KEYS[i], 'assignedAt')
    redis.call('ZADD', KEYS[4], -tonumber(t[4] or '50'), t[1])
    redis.call('LPUSH', KEYS[5], cjson.encode({taskId = t[1], redistributedAt = ARGV[5], targetWorker = 'global'}))
    moved[#moved + 1] = t[1]
  end
end
redis.call('DEL', KEYS[3])
if #moved > 0 then redis.call('EXPIRE', KEYS[5], 3600) end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'status', 'OFFLINE', 'health', 'unhealthy')
end
local reply = {1, #moved}
for _, t in ipairs(moved) do reply[#reply + 1] = t end
return reply
