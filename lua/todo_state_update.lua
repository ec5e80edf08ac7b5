-- lua/todo_state_update.lua: swap in an instance's new TodoWrite list atomically (SPEC §7.29).
-- KEYS[1] cb:todos:current:{iid} (string)   KEYS[2] cb:todos:history:{iid} (list)
-- KEYS[3] cb:todos:instance:{iid} (list)
-- ARGV[1] todos JSON array   ARGV[2] now ISO
-- Returns {1, previous todos JSON ('[]' when none)}. Two concurrent lists for one instance see
-- each other's list as "previous", so no change is detected twice.
local previous = redis.call('GET', KEYS[1]) or '[]'
redis.call('SET', KEYS[1], ARGV[1], 'EX', 86400)
redis.call('LPUSH', KEYS[2], '{"todos":' .. ARGV[1] .. ',"timestamp":' .. cjson.encode(ARGV[2]) .. '}')
redis.call('LTRIM', KEYS[2], 0, 99)
redis.call('EXPIRE', KEYS[2], 86400)
redis.call('DEL', KEYS[3])
local todos = cjson.decode(ARGV[1])
for _, todo in ipairs(todos) do
  redis.call('RPUSH', KEYS[3], cjson.encode(todo))
end
if #todos > 0 then redis.call('EXPIRE', KEYS[3], 3600) end
return {1, previous}
