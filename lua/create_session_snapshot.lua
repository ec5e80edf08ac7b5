-- lua/create_session_snapshot.lua: store a snapshot of a session (SPEC §7.26).
-- KEYS[1] cb:stream:session:{sid}   KEYS[2] cb:snapshot:{sid}:{snapshotId} (hash)
-- KEYS[3] cb:session:state:{sid} (hash)
-- ARGV[1] session id   ARGV[2] snapshot id   ARGV[3] reason   ARGV[4] now, epoch ms
-- ARGV[5] context JSON built by build_session_context ('' for the minimal original context)
-- Returns {1, snapshot id, event count} or {0, 'No events to snapshot'}.
local entries = redis.call('XRANGE', KEYS[1], '-', '+')
if #entries == 0 then
  return {0, 'No events to snapshot'}
end
local function ts(e)
  local raw = e[2]
  for i = 1, #raw, 2 do
    if raw[i] == 'timestamp' then return raw[i + 1] end
  end
  return ARGV[4]
end
local context = ARGV[5]
if context == nil or context == '' then
  local counts = {}
  for _, e in ipairs(entries) do
    local raw = e[2]
    for i = 1, #raw, 2 do
      if raw[i] == 'eventType' then counts[raw[i + 1]] = (counts[raw[i + 1]] or 0) + 1 end
    end
  end
  local instance = redis.call('HGET', KEYS[3], 'instanceId') or 'unknown'
  context = cjson.encode({lastTasks = {}, lastTools = {}, eventCounts = counts, instanceId = instance})
end
redis.call('HSET', KEYS[2], 'snapshotId', ARGV[2], 'sessionId', ARGV[1], 'reason', ARGV[3],
  'eventCount', #entries, 'timestamp', ARGV[4], 'context', context,
  'fromTime', ts(entries[1]), 'toTime', ts(entries[#entries]))
redis.call('EXPIRE', KEYS[2], 2592000)
redis.call('HSET', KEYS[3], 'lastSnapshot', ARGV[2])
return {1, ARGV[2], #entries}
