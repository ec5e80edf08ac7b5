-- lua/gossip_health_update.lua: record one instance's health, age out stale entries, apply the
-- partition rule of SPEC §8.4.
-- KEYS[1] cb:gossip:health (hash)   KEYS[2] cb:partition:detected   KEYS[3] cb:partition:recovery
-- KEYS[4] (optional) cb:instance:{id}: with status 'unhealthy', the instance is marked OFFLINE too,
-- but only if its hash still exists and its lastSeen is still stale (never re-created)
-- ARGV[1] id ('' = only recompute)   ARGV[2] 'healthy' | 'unhealthy'   ARGV[3] the instance's lastSeen, ms
-- ARGV[4] now, ms   ARGV[5] stale after, ms   ARGV[6] drop after, ms   ARGV[7] gossip ttl, s
-- Returns {1, partitionDetected, healthy, total, markedOffline}.
local now, stale, drop = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local marked = 0
if ARGV[1] ~= '' then
  local write = true
  if ARGV[2] == 'unhealthy' and KEYS[4] then
    local seen = tonumber(redis.call('HGET', KEYS[4], 'lastSeen') or '')
    if seen and now - seen <= stale then
      write = false          -- it heartbeated since the caller looked: leave it alone
    elseif redis.call('EXISTS', KEYS[4]) == 1 then
      if redis.call('HGET', KEYS[4], 'status') ~= 'OFFLINE' then marked = 1 end
      redis.call('HSET', KEYS[4], 'status', 'OFFLINE', 'health', 'unhealthy')
    end
  end
  if write then
    redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({status = ARGV[2], lastSeen = ARGV[3]}))
  end
end
local entries = redis.call('HGETALL', KEYS[1])
local total, healthy = 0, 0
for i = 1, #entries, 2 do
  local ok, entry = pcall(cjson.decode, entries[i + 1])
  local seen = ok and tonumber(entry.lastSeen) or nil
  if not seen or now - seen > drop then
    redis.call('HDEL', KEYS[1], entries[i])
  else
    total = total + 1
    if entry.status == 'healthy' and now - seen <= stale then
      healthy = healthy + 1
    end
  end
end
if total > 0 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
end
local partition = 0
if total > 2 and healthy < total / 2 then
  redis.call('SET', KEYS[2], 'true', 'EX', 300)
  redis.call('DEL', KEYS[3])
  partition = 1
elseif healthy > 0.7 * total then
  if redis.call('DEL', KEYS[2]) == 1 then
    redis.call('SET', KEYS[3], 'true', 'EX', 300)
  end
else
  partition = redis.call('EXISTS', KEYS[2])
end
return {1, partition, healthy, total, marked}
