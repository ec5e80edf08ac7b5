-- lua/task_create.lua: store a new pending task, put it on the pending queue and publish its
-- task.created event (stream and channel, exactly once), all in one round trip (DESIGN flow 1).
-- KEYS[1] cb:queue:tasks:pending (zset)   KEYS[2] cb:counter:task:lastid (string)
-- KEYS[3] cb:metrics:queues (hash)        KEYS[4] cb:processed:event:{event id} (marker)
-- KEYS[5] cb:stream:task.created         KEYS[6..] cb:task:t-<N>, one per candidate:
--                                         N = ARGV[12], ARGV[12] + 1, ... in the order of KEYS
-- ARGV[1] text   ARGV[2] priority   ARGV[3] createdAt ISO   ARGV[4] metadata JSON   ARGV[5] now, ms
-- ARGV[6] envelope JSON before the task id   ARGV[7] envelope JSON after it
-- ARGV[8] channel   ARGV[9] stream MAXLEN (approximate)   ARGV[10] stream TTL, s
-- ARGV[11] event marker TTL, s   ARGV[12] the first candidate's N
-- The task takes the first candidate above the last id handed out whose hash does not exist, so
-- ids stay `t-<digits>` and strictly increasing across every process (SPEC §16 row 18) while a
-- caller racing other processes rarely has to ask again. Every key it may write is in KEYS.
-- The candidates' ids are computed, not passed: every argument costs the server about a thousand
-- instructions to take in. Lua numbers are doubles, so N stays below 2^53 (the caller checks).
-- Returns {1, id}, or {0, 'retry', next candidate N} when no candidate qualifies (nothing written).
local first = 6
local base = tonumber(ARGV[12]) - first
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local id, number = nil, nil
-- Candidates at or below the counter are skipped without touching their keys.
for i = math.max(first, last + 1 - base), #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    number = base + i
    id = 't-' .. string.format('%d', number)
    redis.call('HSET', KEYS[i],
      'id', id, 'text', ARGV[1], 'priority', ARGV[2], 'status', 'pending',
      'createdAt', ARGV[3], 'updatedAt', ARGV[3], 'metadata', ARGV[4],
      'assignedTo', '', 'result', '', 'error', '', 'createdAtMs', ARGV[5])
    break
  end
end
if not id then
  return {0, 'retry', math.max(last, base + #KEYS) + 1}
end
redis.call('SET', KEYS[2], string.format('%d', number))
redis.call('ZADD', KEYS[1], -tonumber(ARGV[2]), id)
redis.call('HINCRBY', KEYS[3], 'totalTasks', 1)
redis.call('HINCRBY', KEYS[3], 'pendingTasks', 1)
redis.call('HSETNX', KEYS[3], 'throughput', '0')
-- The event, as lua/exactly_once_delivery.lua delivers one (its id is new, so never a duplicate).
if redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[11]) then
  local envelope = ARGV[6] .. id .. ARGV[7]
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[9], '*', 'data', envelope)
  -- The stream's TTL, renewed as lua/exactly_once_delivery.lua does: once it has run down by a
  -- tenth, at most a minute (one append-only file record a minute for a busy stream).
  local stream_ttl = tonumber(ARGV[10])
  if redis.call('TTL', KEYS[5]) < stream_ttl - math.min(60, math.floor(stream_ttl / 10)) then
    redis.call('EXPIRE', KEYS[5], stream_ttl)
  end
  redis.call('PUBLISH', ARGV[8], envelope)
end
return {1, id}
