-- lua/exactly_once_delivery.lua: publish one event exactly once, on both transports.
-- KEYS[1] cb:processed:event:{id} (string marker)   KEYS[2] cb:duplicates:prevented (counter)
-- KEYS[3] cb:stream:{type} (stream)   KEYS[4] optional: the gate of a call whose admission is in
-- the same round trip (lua/pipeline_admit.lua sets it when it lets the call through)
-- ARGV[1] event id   ARGV[2] envelope JSON   ARGV[3] pub/sub channel (the bare event type)
-- ARGV[4] approximate stream MAXLEN   ARGV[5] stream TTL, seconds   ARGV[6] marker TTL, seconds
-- Returns {0, stream entry id} when delivered, {1, duplicates prevented so far} for a duplicate,
-- {2, ''} when a gate was given and is not set (the call was refused: nothing written).
-- One marker key per id with its own expiry (SPEC §4.6), so the store stays bounded.
if KEYS[4] and redis.call('EXISTS', KEYS[4]) == 0 then
  return {2, ''}
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[6]) then
  local count = redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], 3600)
  return {1, count}
end
local entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'data', ARGV[2])
-- The stream lives ARGV[5] seconds after its last event. Its TTL is set again only once it has
-- run down by a tenth of it, at most a minute: a busy stream gets one EXPIRE (one append-only
-- file record) a minute, not one per event. A new stream (TTL -1) gets it at once.
local stream_ttl = tonumber(ARGV[5])
if redis.call('TTL', KEYS[3]) < stream_ttl - math.min(60, math.floor(stream_ttl / 10)) then
  redis.call('EXPIRE', KEYS[3], stream_ttl)
end
redis.call('PUBLISH', ARGV[3], ARGV[2])
return {0, entry}
