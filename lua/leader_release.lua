-- lua/leader_release.lua: give up leadership on a clean exit (compare-and-delete, SPEC §8.5).
-- KEYS[1] cb:leader:current   KEYS[2] cb:leader:lock   ARGV[1] me
-- Returns {1, released (0|1)}.
local released = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  released = 1
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return {1, released}
