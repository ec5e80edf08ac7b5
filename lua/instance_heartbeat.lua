-- lua/instance_heartbeat.lua: refresh a registered instance, its sets and its gossip entry (SPEC §8.2).
-- KEYS[1] cb:instance:{id} (hash)   KEYS[2] cb:gossip:health (hash)   KEYS[3] cb:instances:active
-- KEYS[4] cb:capabilities:{id}   KEYS[5] cb:leader:current   KEYS[6] cb:leader:lock
-- KEYS[7..] cb:role:{role} for each role of the stored roles JSON, then cb:specialists:{type}
-- ARGV[1] id   ARGV[2] now, epoch ms   ARGV[3] ttl, s   ARGV[4] now ISO   ARGV[5] leader ttl, ms
-- ARGV[6] roles JSON as the caller read it   ARGV[7] 1 = take leadership when nobody holds it
-- ARGV[8] gossip ttl, s
-- Returns {1, isLeader, previous status}, {0, 'retry'} when the roles changed since the caller's
-- read, or {0, 'Instance not registered'}. Resets status ACTIVE / health healthy (SPEC §16 row 31).
local id, ttl = ARGV[1], tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 'Instance not registered'}
end
local cur = redis.call('HMGET', KEYS[1], 'roles', 'status')
if (cur[1] or '') ~= ARGV[6] then
  return {0, 'retry'}
end
local previous = cur[2] or ''
redis.call('HSET', KEYS[1], 'lastSeen', ARGV[2], 'lastHeartbeat', ARGV[4], 'status', 'ACTIVE', 'health', 'healthy')
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('HSET', KEYS[2], id, cjson.encode({status = 'healthy', lastSeen = ARGV[2]}))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[8]))
redis.call('SADD', KEYS[3], id)
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('EXPIRE', KEYS[4], ttl)
for i = 7, #KEYS do
  redis.call('SADD', KEYS[i], id)
  redis.call('EXPIRE', KEYS[i], ttl)
end
local leader = 0
local current = redis.call('GET', KEYS[5])
if current == id then
  redis.call('PEXPIRE', KEYS[5], ARGV[5])
  redis.call('SET', KEYS[6], id, 'PX', ARGV[5])
  leader = 1
elseif not current and ARGV[7] == '1' then
  if redis.call('SET', KEYS[6], id, 'NX', 'PX', ARGV[5]) then
    redis.call('SET', KEYS[5], id, 'PX', ARGV[5])
    leader = 1
  end
end
return {1, leader, previous}
