-- lua/quorum_vote.lua: one vote per voter per decision; majority of live voters (SPEC §7.4, §16 row 35).
-- KEYS[1] cb:quorum:decision:{decision}   KEYS[2] cb:quorum:decision:latest (mirror for the job)
-- KEYS[3..] cb:instance:{voter} for each voter after this vote, in ARGV[6] order
-- ARGV[1] decision   ARGV[2] voter id   ARGV[3] value   ARGV[4] total instances   ARGV[5] now, ms
-- ARGV[6] voter ids after this vote, sorted, joined by '\n', as the caller computed them
-- ARGV[7] ttl, s
-- A voter's later vote replaces its earlier one. A voter whose instance is known and OFFLINE is
-- not counted. Returns {1, reached, winning value or '', counted votes, newly decided (0|1)}
-- or {0, 'retry'} if the voter set changed since the caller's read.
local raw = redis.call('HGET', KEYS[1], 'votes')
local votes = {}
if raw and raw ~= '' and raw ~= '{}' then votes = cjson.decode(raw) end
local replaced = false
for _, v in ipairs(votes) do
  if v.id == ARGV[2] then v.value = ARGV[3]; v.timestamp = tonumber(ARGV[5]); replaced = true end
end
if not replaced then votes[#votes + 1] = {id = ARGV[2], value = ARGV[3], timestamp = tonumber(ARGV[5])} end
local ids = {}
for _, v in ipairs(votes) do ids[#ids + 1] = v.id end
table.sort(ids)
if table.concat(ids, '\n') ~= ARGV[6] then
  return {0, 'retry'}
end
local dead = {}
for i, vid in ipairs(ids) do
  if redis.call('HGET', KEYS[2 + i], 'status') == 'OFFLINE' then dead[vid] = true end
end
local quorum = math.floor(tonumber(ARGV[4]) / 2) + 1
local counted, counts, order = 0, {}, {}
for _, v in ipairs(votes) do
  if not dead[v.id] then
    counted = counted + 1
    if not counts[v.value] then counts[v.value] = 0; order[#order + 1] = v.value end
    counts[v.value] = counts[v.value] + 1
  end
end
local winner = ''
for _, value in ipairs(order) do
  if winner == '' and counts[value] >= quorum then winner = value end
end
local previous = redis.call('HGET', KEYS[1], 'decision') or ''
local encoded = cjson.encode(votes)
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'votes', encoded, 'quorum', quorum)
redis.call('HSET', KEYS[2], 'name', ARGV[1], 'votes', encoded, 'quorum', quorum)
if winner ~= '' then
  redis.call('HSET', KEYS[1], 'decision', winner, 'timestamp', ARGV[5])
  redis.call('HSET', KEYS[2], 'decision', winner, 'timestamp', ARGV[5])
else
  redis.call('HDEL', KEYS[1], 'decision')
  redis.call('HDEL', KEYS[2], 'decision')
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]))
local reached = counted >= quorum and 1 or 0
local new = (winner ~= '' and previous ~= winner) and 1 or 0
return {1, reached, winner, counted, new}
