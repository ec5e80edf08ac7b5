-- lua/sync_global_state.lua: store a new version of the global state summary (SPEC §7.8).
-- KEYS[1] cb:leader:current   KEYS[2] cb:state:global (hash)
-- ARGV[1] fence: expected leader ('' = none)   ARGV[2] state JSON   ARGV[3] now, ms   ARGV[4] written by
-- Returns {1, new version} or {0, 'not leader'}.
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, 'not leader'}
end
local version = tonumber(redis.call('HGET', KEYS[2], 'version') or '0') + 1
redis.call('HSET', KEYS[2], 'data', ARGV[2], 'version', version, 'timestamp', ARGV[3], 'syncedBy', ARGV[4])
redis.call('EXPIRE', KEYS[2], 300)
return {1, version}
