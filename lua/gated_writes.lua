-- lua/gated_writes.lua: a handler's writes sent in the same round trip as its admission, done
-- only if the admission let the call through (lua/pipeline_admit.lua then set the gate key).
-- KEYS[1] the gate: cb:gate:{call event id}; deleted here, so the writes happen at most once
-- KEYS[2..] the keys the writes touch
-- ARGV[1] number of writes, then per write: command, index in KEYS of its key, number of further
-- arguments, those arguments. Commands: one key each, from the list below.
-- Returns 1 when the writes were done, 0 when the gate was not set (nothing written).
local allowed = {SET = true, EXPIRE = true, XADD = true, LPUSH = true, LTRIM = true, HSET = true, HINCRBY = true}
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  local command, key, count = ARGV[i], KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  if not allowed[command] then
    return redis.error_reply('gated_writes: command not allowed: ' .. tostring(command))
  end
  redis.call(command, key, unpack(ARGV, i + 3, i + 2 + count))
  i = i + 3 + count
end
return 1
