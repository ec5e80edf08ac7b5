-- lua/build_session_context.lua: condense a session's recent events (SPEC §7.25).
-- KEYS[1] cb:stream:session:{sid}   KEYS[2] cb:session:context:{sid} (hash)
-- KEYS[3] cb:session:tools:{sid} (list)   KEYS[4..] cb:task:{id} of up to 5 session tasks
--   (the caller reads cb:session:tasks:{sid} and passes those task keys; this script only reads)
-- ARGV[1] session id   ARGV[2] how many newest events to read (default 100)
-- Returns a JSON object {lastTasks, lastTools, lastPrompt?, activeTodos, eventCounts, instanceId?}.
-- Empty Lua tables encode as {}; the Python wrapper turns the list fields back into lists.
local limit = tonumber(ARGV[2]) or 100
local entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', limit)
local ctx = {lastTasks = {}, lastTools = {}, activeTodos = {}, eventCounts = {}}
local seen_tools = {}
local prompt_set, todos_set = false, false
for _, e in ipairs(entries) do
  local f = {}
  local raw = e[2]
  for i = 1, #raw, 2 do f[raw[i]] = raw[i + 1] end
  local kind = f.eventType or 'unknown'
  ctx.eventCounts[kind] = (ctx.eventCounts[kind] or 0) + 1
  if not ctx.instanceId and f.instanceId then ctx.instanceId = f.instanceId end
  local ok, params = pcall(cjson.decode, f.params or 'null')
  if ok and type(params) == 'table' then
    if kind == 'hook.user_prompt' and not prompt_set and type(params.prompt) == 'string' then
      ctx.lastPrompt = params.prompt
      prompt_set = true
    elseif (kind == 'hook.pre_tool' or kind == 'hook.post_tool') and type(params.tool) == 'string' then
      if not seen_tools[params.tool] and #ctx.lastTools < 10 then
        seen_tools[params.tool] = true
        table.insert(ctx.lastTools, params.tool)
      end
    elseif kind == 'hook.todo_write' and not todos_set and type(params.todos) == 'table' then
      ctx.activeTodos = params.todos
      todos_set = true
    end
  end
end
local tools = redis.call('LRANGE', KEYS[3], 0, 9)
if #tools > 0 then ctx.lastTools = tools end
for i = 4, #KEYS do
  local t = redis.call('HMGET', KEYS[i], 'id', 'text', 'status')
  if t[1] then table.insert(ctx.lastTasks, {id = t[1], text = t[2] or '', status = t[3] or ''}) end
end
local stored = redis.call('HMGET', KEYS[2], 'lastPrompt', 'activeTodos')
if not ctx.lastPrompt and stored[1] then ctx.lastPrompt = stored[1] end
if stored[2] and not todos_set then
  local ok, todos = pcall(cjson.decode, stored[2])
  if ok and type(todos) == 'table' then ctx.activeTodos = todos end
end
return cjson.encode(ctx)
