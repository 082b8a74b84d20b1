-- claim.lua: give up to N waiting tokens of one queue to one agent. WAITING -> ADMITTED.
--
-- Keys: $K_QUEUE<queue>, $K_QUEUES, $K_TOKEN<id>, $K_INFLIGHT<agent>, $K_AGENTS (lib.lua).
-- ARGV[1] prefix, ARGV[2] queue (a weight, or weight and need: the gateway claims only for
-- agents that serve it), ARGV[3] N, ARGV[4] agent, ARGV[5] byte budget (stop once
-- the claimed items hold this many bytes: a batch of large calls stays frame-sized).
-- An agent that is not registered (declared lost) gets nothing. Ids whose token is no longer
-- waiting (expired) are dropped from the queue.
-- The queue's head is read with one LRANGE and what was looked at leaves it with one LTRIM
-- (not one LPOP per token).
-- Returns, msgpack-packed, a flat array: id1, attempt1, item1, id2, ...
local p, w, n, agent = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local budget = tonumber(ARGV[5])
if n < 1 or redis.call('HEXISTS', p .. '$K_AGENTS', agent) == 0 then
  return cmsgpack.pack({})
end
local qkey, setkey = p .. '$K_QUEUE' .. w, p .. '$K_INFLIGHT' .. agent
local out, taken, size, looked = {}, {}, 0, 0
while #taken < n and size < budget do
  local ids = redis.call('LRANGE', qkey, looked, looked + n - #taken - 1)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    looked = looked + 1
    local key = tkey(p, id)
    local t = redis.call('HMGET', key, '$F_STATE', '$F_ATTEMPT', '$F_ITEM')
    if t[1] == '$WAITING' then
      move_token(key, id, t[1], '$ADMITTED', '$F_AGENT', agent)
      out[#out + 1] = id
      out[#out + 1] = t[2] or '1'
      out[#out + 1] = t[3]
      taken[#taken + 1] = id
      size = size + #t[3]
      if size >= budget then break end
    end
  end
end
if looked > 0 then
  redis.call('LTRIM', qkey, looked, -1)
  if redis.call('LLEN', qkey) == 0 then redis.call('SREM', p .. '$K_QUEUES', w) end
end
if #taken > 0 then add_all('SADD', setkey, taken) end
return cmsgpack.pack(out)
