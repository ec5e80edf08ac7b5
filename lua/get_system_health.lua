-- lua/get_system_health.lua: classify instances by heartbeat age and report service flags.
-- KEYS[1] cb:service:postgres:status   KEYS[2] cb:service:mcp:status   KEYS[3..] cb:instance:{id}
-- ARGV[1] now, epoch ms   ARGV[2] heartbeat timeout, ms
-- One rule (SPEC §8.2): age <= timeout/2 healthy, <= timeout degraded, else unhealthy.
-- Returns {status, redisOk, postgresOk, mcpOk, healthy, degraded, total}.
local now, timeout = tonumber(ARGV[1]), tonumber(ARGV[2])
local healthy, degraded, total = 0, 0, 0
for i = 3, #KEYS do
  local seen = redis.call('HGET', KEYS[i], 'lastSeen')
  if seen then
    total = total + 1
    local age = now - tonumber(seen)
    if age <= timeout / 2 then
      healthy = healthy + 1
    elseif age <= timeout then
      degraded = degraded + 1
    end
  end
end
local status = 'unhealthy'
if total > 0 and healthy == total then
  status = 'healthy'
elseif healthy + degraded >= total / 2 then
  status = 'degraded'
end
local pg = redis.call('GET', KEYS[1]) == 'ok' and 1 or 0
local mcp = redis.call('GET', KEYS[2]) == 'ok' and 1 or 0
return {status, 1, pg, mcp, healthy, degraded, total}
