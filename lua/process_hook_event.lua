-- lua/process_hook_event.lua: record one hook event in its session (SPEC §7.24, §10.9).
-- KEYS[1] cb:stream:session:{sid} (stream)   KEYS[2] cb:session:state:{sid} (hash)
-- KEYS[3] cb:session:context:{sid} (hash)    KEYS[4] cb:session:tools:{sid} (list)
-- KEYS[5] cb:metrics:session:{sid} (hash)
-- ARGV[1] event id   ARGV[2] event type (hook.<type>)   ARGV[3] session id   ARGV[4] instance id
-- ARGV[5] now, epoch ms   ARGV[6] params JSON   ARGV[7] result JSON   ARGV[8] labels JSON
-- Returns {1, stream entry id, event count, needs snapshot (0|1)}.
-- Fix of SPEC §7.24's edge: activeTodos holds params.todos (the array), not the whole params.
local week, day = 604800, 86400
local entry = redis.call('XADD', KEYS[1], '*',
  'eventId', ARGV[1], 'eventType', ARGV[2], 'sessionId', ARGV[3], 'instanceId', ARGV[4],
  'timestamp', ARGV[5], 'params', ARGV[6], 'result', ARGV[7], 'labels', ARGV[8])
redis.call('EXPIRE', KEYS[1], week)
local count = redis.call('HINCRBY', KEYS[2], 'eventCount', 1)
redis.call('HSET', KEYS[2], 'lastEventId', ARGV[1], 'lastActivity', ARGV[5], 'instanceId', ARGV[4])
redis.call('EXPIRE', KEYS[2], week)
local ok, params = pcall(cjson.decode, ARGV[6])
if ok and type(params) == 'table' then
  local kind = ARGV[2]
  if (kind == 'hook.pre_tool' or kind == 'hook.post_tool') and type(params.tool) == 'string' then
    redis.call('LPUSH', KEYS[4], params.tool)
    redis.call('LTRIM', KEYS[4], 0, 9)
    redis.call('EXPIRE', KEYS[4], week)
  elseif kind == 'hook.user_prompt' and type(params.prompt) == 'string' then
    redis.call('HSET', KEYS[3], 'lastPrompt', params.prompt, 'lastPromptTime', ARGV[5])
  elseif kind == 'hook.todo_write' and type(params.todos) == 'table' then
    redis.call('HSET', KEYS[3], 'activeTodos', cjson.encode(params.todos), 'lastTodoUpdate', ARGV[5])
  end
  if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], week) end
end
redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
redis.call('HINCRBY', KEYS[5], 'total', 1)
redis.call('EXPIRE', KEYS[5], day)
local needs = 0
if count % 100 == 0 then needs = 1 end
return {1, entry, count, needs}
