-- lua/get_system_state.lua: a snapshot of instances, tasks and recent events (SPEC §7.18).
-- KEYS[1..A] cb:instance:{id}   KEYS[A+1..A+B] cb:task:t-* hashes   KEYS[A+B+1..] cb:stream:* keys
-- ARGV[1] A   ARGV[2] B   ARGV[3] newest entries to read per stream
-- Returns {instances JSON, tasks JSON, events JSON}: arrays of objects (hash fields as strings);
-- events are {id, stream, data}. Empty arrays may arrive as '{}' (cjson); the caller normalises.
local a, b, per = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local function as_object(flat)
  local o = {}
  for i = 1, #flat, 2 do o[flat[i]] = flat[i + 1] end
  return o
end
local instances, tasks, events = {}, {}, {}
for i = 1, a do
  local flat = redis.call('HGETALL', KEYS[i])
  if #flat > 0 then instances[#instances + 1] = as_object(flat) end
end
for i = a + 1, a + b do
  local flat = redis.call('HGETALL', KEYS[i])
  if #flat > 0 then tasks[#tasks + 1] = as_object(flat) end
end
for i = a + b + 1, #KEYS do
  for _, entry in ipairs(redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', per)) do
    local fields = as_object(entry[2])
    events[#events + 1] = {id = entry[1], stream = KEYS[i], data = fields.data or ''}
  end
end
return {cjson.encode(instances), cjson.encode(tasks), cjson.encode(events)}
