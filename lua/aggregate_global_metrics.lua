-- lua/aggregate_global_metrics.lua: cluster-wide totals into cb:metrics:global and cb:metrics:scaling
-- (SPEC §7.5). The caller SCANs the key space and passes every key here (no KEYS/SCAN inside).
-- KEYS[1] cb:leader:current   KEYS[2] cb:metrics:global   KEYS[3] cb:metrics:scaling
-- KEYS[4..3+ARGV[2]] cb:queue:instance:{id} of each live instance   then cb:stream:* keys
-- ARGV[1] fence: expected leader ('' = none)   ARGV[2] instance count   ARGV[3] task count
-- ARGV[4] average latency, ms (string)
-- Returns {1, totalEvents, totalTasks, avgLatency, throughput, instanceCount, loadBalance, totalLoad};
-- fractional values travel as strings.
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, 'not leader'}
end
local ninst, tasks = tonumber(ARGV[2]), tonumber(ARGV[3])
local events = 0
for i = 4 + ninst, #KEYS do
  events = events + redis.call('XLEN', KEYS[i])
end
local throughput = string.format('%.2f', events / 60)
redis.call('HSET', KEYS[2], 'totalEvents', events, 'totalTasks', tasks, 'avgLatency', ARGV[4],
  'throughput', throughput)
redis.call('EXPIRE', KEYS[2], 3600)
local loads, total = {}, 0
for i = 4, 3 + ninst do
  local l = redis.call('LLEN', KEYS[i])
  loads[#loads + 1] = l
  total = total + l
end
local balance = 0
if ninst > 0 then
  local mean = total / ninst
  local dev = 0
  for _, l in ipairs(loads) do dev = dev + math.abs(l - mean) end
  balance = dev / ninst
end
local balance_s = string.format('%.2f', balance)
redis.call('HSET', KEYS[3], 'instanceCount', ninst, 'loadBalance', balance_s, 'totalLoad', total)
redis.call('EXPIRE', KEYS[3], 300)
return {1, events, tasks, ARGV[4], throughput, ninst, balance_s, total}
