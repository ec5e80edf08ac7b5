-- lua/leader_elect.lua: take or renew cluster leadership (SET NX with expiry, SPEC §8.5).
-- A ClaudeBench server may take leadership from a client instance (kind ~= 'server'), so that the
-- leader-only duties always have a server to run them; between servers, only expiry hands it on.
-- KEYS[1] cb:leader:current   KEYS[2] cb:leader:lock   KEYS[3] cb:instance:{holder the caller read}
-- ARGV[1] me   ARGV[2] ttl, ms   ARGV[3] holder the caller read ('' when none)
-- Returns {1, isLeader, becameLeader, holder} or {0, 'retry'} when the holder changed since the read.
local me = ARGV[1]
local current = redis.call('GET', KEYS[1]) or ''
if current == me then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], me, 'PX', ARGV[2])
  return {1, 1, 0, me}
end
if current ~= ARGV[3] then
  return {0, 'retry'}
end
if current == '' or redis.call('HGET', KEYS[3], 'kind') ~= 'server' then
  redis.call('SET', KEYS[1], me, 'PX', ARGV[2])
  redis.call('SET', KEYS[2], me, 'PX', ARGV[2])
  return {1, 1, 1, me}
end
return {1, 0, 0, current}
