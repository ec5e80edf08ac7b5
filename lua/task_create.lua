-- lua/task_create.lua: store a new pending task, put it on the pending queue and publish its
-- task.created event (stream and channel, exactly once), all in one round trip (DESIGN flow 1).
-- KEYS[1] cb:queue:tasks:pending (zset)   KEYS[2] cb:counter:task:lastid (string)
-- KEYS[3] cb:metrics:queues (hash)        KEYS[4] cb:processed:event:{event id} (marker)
-- KEYS[5] cb:stream:task.created          KEYS[6..] cb:task:{id}, one per candidate id
-- ARGV[1] text   ARGV[2] priority   ARGV[3] createdAt ISO   ARGV[4] metadata JSON   ARGV[5] now, ms
-- ARGV[6] envelope JSON before the task id   ARGV[7] envelope JSON after it
-- ARGV[8] channel   ARGV[9] stream MAXLEN (approximate)   ARGV[10] stream TTL, s
-- ARGV[11] event marker TTL, s   ARGV[12..] the candidate ids, `t-<N>` with N consecutive and
-- increasing, in the order of KEYS[6..]
-- The task takes the first candidate above the last id handed out whose hash does not exist, so
-- ids stay `t-<digits>` and strictly increasing across every process (SPEC §16 row 18) while a
-- caller racing other processes rarely has to ask again. Every key it may write is in KEYS.
-- Returns {1, id}, or {0, 'retry', next candidate N} when no candidate qualifies (nothing written).
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local id, digits = nil, nil
for i = 6, #KEYS do
  local candidate = ARGV[i + 6]
  local n = string.sub(candidate, 3)
  if tonumber(n) > last and redis.call('EXISTS', KEYS[i]) == 0 then
    id, digits = candidate, n
    redis.call('HSET', KEYS[i],
      'id', id, 'text', ARGV[1], 'priority', ARGV[2], 'status', 'pending',
      'createdAt', ARGV[3], 'updatedAt', ARGV[3], 'metadata', ARGV[4],
      'assignedTo', '', 'result', '', 'error', '', 'createdAtMs', ARGV[5])
    break
  end
end
if not id then
  local highest = tonumber(string.sub(ARGV[#ARGV], 3))
  return {0, 'retry', math.max(last, highest) + 1}
end
redis.call('SET', KEYS[2], digits)
redis.call('ZADD', KEYS[1], -tonumber(ARGV[2]), id)
redis.call('HINCRBY', KEYS[3], 'totalTasks', 1)
redis.call('HINCRBY', KEYS[3], 'pendingTasks', 1)
redis.call('HSETNX', KEYS[3], 'throughput', '0')
-- The event, as lua/exactly_once_delivery.lua delivers one (its id is new, so never a duplicate).
if redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[11]) then
  local envelope = ARGV[6] .. id .. ARGV[7]
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[9], '*', 'data', envelope)
  redis.call('EXPIRE', KEYS[5], ARGV[10])
  redis.call('PUBLISH', ARGV[8], envelope)
end
return {1, id}
