-- forget.lua: the client has these results: drop them now rather than at their TTL.
--
-- Keys: <p>t:<id> (hash; see submit.lua).
-- ARGV[1] prefix, ARGV[2] msgpack array of token ids.
-- A final token is deleted. One not final yet (its result reached the client before the
-- gateway stored it) is marked with x = 1, and complete.lua deletes it once it applies.
-- Returns the number deleted.
local p = ARGV[1]
local ids = cmsgpack.unpack(ARGV[2])
local deleted = 0
for _, id in ipairs(ids) do
  local key = p .. 't:' .. id
  local s = redis.call('HGET', key, 's')
  if s == 'completed' or s == 'failed' or s == 'killed' then
    redis.call('DEL', key)
    deleted = deleted + 1
  elseif s then
    redis.call('HSET', key, 'x', 1)
  end
end
return deleted
