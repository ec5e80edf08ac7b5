-- lua/instance_register.lua: register (or re-register) an instance; take leadership if nobody holds it.
-- KEYS[1] cb:instance:{id} (hash)   KEYS[2] cb:instances:active (set)   KEYS[3] cb:capabilities:{id} (set)
-- KEYS[4] cb:leader:current   KEYS[5] cb:leader:lock   KEYS[6..5+n] cb:role:{role} for each role, in
-- the order of the roles JSON   KEYS[6+n] cb:specialists:{type} (SPEC §16 row 37)
-- ARGV[1] id   ARGV[2] roles JSON array   ARGV[3] now, epoch ms   ARGV[4] ttl, s   ARGV[5] metadata JSON
-- ARGV[6] leader ttl, ms   ARGV[7] kind ('server' for a ClaudeBench server, else 'client')
-- ARGV[8] capabilities JSON array   ARGV[9] maxCapacity   ARGV[10] now ISO
-- Returns {1, becameLeader, isLeader}.
local id, ttl = ARGV[1], tonumber(ARGV[4])
local roles = cjson.decode(ARGV[2])
redis.call('HSET', KEYS[1], 'id', id, 'roles', ARGV[2], 'health', 'healthy', 'status', 'ACTIVE',
  'lastSeen', ARGV[3], 'lastHeartbeat', ARGV[10], 'metadata', ARGV[5], 'kind', ARGV[7],
  'capabilities', ARGV[8], 'maxCapacity', ARGV[9], 'registeredAt', ARGV[10])
redis.call('HDEL', KEYS[1], 'stoppedAt')
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('SADD', KEYS[2], id)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('DEL', KEYS[3])
for i = 1, #roles do
  redis.call('SADD', KEYS[5 + i], id)
  redis.call('EXPIRE', KEYS[5 + i], ttl)
  redis.call('SADD', KEYS[3], roles[i])
end
redis.call('SADD', KEYS[3], 'instance-' .. id)
redis.call('EXPIRE', KEYS[3], ttl)
local spec_key = KEYS[6 + #roles]
redis.call('SADD', spec_key, id)
redis.call('EXPIRE', spec_key, ttl)
local became, leader = 0, 0
local current = redis.call('GET', KEYS[4])
if not current then
  if redis.call('SET', KEYS[5], id, 'NX', 'PX', ARGV[6]) then
    redis.call('SET', KEYS[4], id, 'PX', ARGV[6])
    became, leader = 1, 1
  end
elseif current == id then
  leader = 1
end
return {1, became, leader}
