-- claim.lua: take up to N waiting tokens of one weight for one agent.
--
-- Keys: <p>q:<weight> (list), <p>t:<id> (hash), <p>inflight:<agent> (set); see submit.lua.
-- ARGV[1] prefix, ARGV[2] weight, ARGV[3] N, ARGV[4] agent,
-- ARGV[5] byte budget: stop once the claimed items hold this many bytes (a batch of large
-- calls stays frame-sized; the rest waits for the next claim).
-- Ids whose token is no longer 'waiting' (killed while queued, expired) are dropped: this is
-- the "skip at dequeue" of kill.
-- Returns a flat array: id1, attempt1, item_bytes1, id2, ...
local p, w, n, agent = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local budget = tonumber(ARGV[5])
local qkey = p .. 'q:' .. w
local out, taken, size = {}, {}, 0
while #taken < n and size < budget do
  local id = redis.call('LPOP', qkey)
  if not id then break end
  local key = p .. 't:' .. id
  local t = redis.call('HMGET', key, 's', 'a', 'd')
  if t[1] == 'waiting' then
    redis.call('HSET', key, 's', 'admitted', 'g', agent)
    out[#out + 1] = id
    out[#out + 1] = t[2]
    out[#out + 1] = t[3]
    taken[#taken + 1] = id
    size = size + #t[3]
  end
end
if #taken > 0 then redis.call('SADD', p .. 'inflight:' .. agent, unpack(taken)) end
return out
