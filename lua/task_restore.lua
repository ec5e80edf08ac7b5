-- lua/task_restore.lua: put back one task read from PostgreSQL (start-up hydration, SPEC §12.3).
-- KEYS[1] cb:task:{id} (hash)   KEYS[2] cb:queue:tasks:pending (zset)
-- KEYS[3] cb:counter:task:lastid (string)   KEYS[4] cb:queue:instance:{assignee} (list)
-- ARGV[1] task id   ARGV[2] id digits (0 when the id is not t-<digits>)   ARGV[3] status
-- ARGV[4] assignee ('' for none)   ARGV[5] priority   ARGV[6..] field, value pairs of the hash
-- Returns 1 when restored, 0 when Redis already holds the task (it is never overwritten).
-- Only pending unassigned tasks go on the pending queue; open assigned ones on their instance's.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
local status, assignee = ARGV[3], ARGV[4]
if status == 'pending' and assignee == '' then
  redis.call('ZADD', KEYS[2], -tonumber(ARGV[5]), ARGV[1])
elseif assignee ~= '' and (status == 'pending' or status == 'in_progress') then
  redis.call('LREM', KEYS[4], 0, ARGV[1])
  redis.call('RPUSH', KEYS[4], ARGV[1])
end
local n = tonumber(ARGV[2])
if n > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], ARGV[2])
end
return 1
