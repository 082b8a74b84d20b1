-- complete.lua: record the final outcome of a batch of tokens reported by one agent.
--
-- Keys: <p>t:<id> (hash; gains r, the ResultItem protobuf bytes, loses d), the
-- <p>inflight:<agent> set of the agent that held each token, <p>counts; see submit.lua.
-- ARGV[1] prefix, ARGV[2] result ttl seconds, ARGV[3] msgpack array of [id, state, result]
-- with state one of completed | failed | killed.
-- The first final outcome wins: a token already final (or unknown, or expired) is left as it
-- is, so a late report from an agent declared lost, or a resent frame, changes nothing.
-- A token its client already confirmed receiving (x = 1, see forget.lua) is deleted instead
-- of kept for the TTL.
-- Returns one integer per item: 1 applied, 0 ignored.
local p, ttl = ARGV[1], tonumber(ARGV[2])
local items = cmsgpack.unpack(ARGV[3])
local out, counts = {}, {}
for i, it in ipairs(items) do
  local id, state, result = it[1], it[2], it[3]
  local key = p .. 't:' .. id
  local t = redis.call('HMGET', key, 's', 'g', 'x')
  local s = t[1]
  if s == 'waiting' or s == 'admitted' or s == 'executing' then
    if t[3] then
      redis.call('DEL', key)
    else
      redis.call('HSET', key, 's', state, 'r', result)
      redis.call('HDEL', key, 'd')
      redis.call('EXPIRE', key, ttl)
    end
    if t[2] then redis.call('SREM', p .. 'inflight:' .. t[2], id) end
    counts[state] = (counts[state] or 0) + 1
    out[i] = 1
  else
    out[i] = 0
  end
end
for state, n in pairs(counts) do redis.call('HINCRBY', p .. 'counts', state, n) end
return out
