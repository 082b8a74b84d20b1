-- expire.lua: fail the tokens that waited past their deadline in a queue no live agent
-- serves (the gateway decides that; here, only the cutoff). WAITING -> FAILED
-- (PlacementTimeout).
--
-- Keys: $K_QUEUE<queue>, $K_QUEUES, $K_TOKEN<id>, $K_COUNTS (lib.lua).
-- ARGV[1] prefix, ARGV[2] queue, ARGV[3] cutoff (unix seconds: a token created at or before
-- it fails), ARGV[4] the error message, ARGV[5] ttl seconds, ARGV[6] now, ARGV[7] the most
-- ids looked at (from the head).
-- Ids looked at leave the queue: the failed ones and any no longer waiting; the rest go back
-- to its head in their order. Returns, msgpack-packed, flat [id, attempt, session, ...].
local p, q, cutoff = ARGV[1], ARGV[2], tonumber(ARGV[3])
local qkey = p .. '$K_QUEUE' .. q
local ids = redis.call('LRANGE', qkey, 0, tonumber(ARGV[7]) - 1)
local keep, out = {}, {}
for _, id in ipairs(ids) do
  local key = tkey(p, id)
  local t = redis.call('HMGET', key, '$F_STATE', '$F_CREATED', '$F_ATTEMPT', '$F_ROUTE',
                       '$F_SESSION', '$F_KEEP')
  if t[1] == '$WAITING' then
    if tonumber(t[2]) <= cutoff then
      move_token(key, id, t[1], '$FAILED', '$F_ERROR_TYPE', 'PlacementTimeout',
                 '$F_ERROR_MESSAGE', ARGV[4], '$F_FINISHED_AT', ARGV[6])
      expire_final(key, ARGV[5], t[6])
      out[#out + 1] = id
      out[#out + 1] = t[3] or '1'
      out[#out + 1] = select(2, route(t[4], nil, t[5])) or ''
    else
      keep[#keep + 1] = id
    end
  end
end
if #ids > 0 then
  redis.call('LTRIM', qkey, #ids, -1)
  local back = {}
  for i = #keep, 1, -1 do back[#back + 1] = keep[i] end
  add_all('LPUSH', qkey, back)
  if redis.call('LLEN', qkey) == 0 then redis.call('SREM', p .. '$K_QUEUES', q) end
end
if #out > 0 then redis.call('HINCRBY', p .. '$K_COUNTS', 'failed', #out / 3) end
return cmsgpack.pack(out)
