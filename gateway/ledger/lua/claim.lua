-- claim.lua: give up to N waiting tokens of one weight to one agent. WAITING -> ADMITTED.
--
-- Keys: $K_QUEUE<weight>, $K_TOKEN<id>, $K_INFLIGHT<agent>, $K_AGENTS (lib.lua).
-- ARGV[1] prefix, ARGV[2] weight, ARGV[3] N, ARGV[4] agent, ARGV[5] byte budget (stop once
-- the claimed items hold this many bytes: a batch of large calls stays frame-sized),
-- ARGV[6] now.
-- An agent that is not registered (declared lost) gets nothing. Ids whose token is no longer
-- waiting (expired) are dropped from the queue.
-- Returns a flat array: id1, attempt1, item1, id2, ...
local p, w, n, agent = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local budget, now = tonumber(ARGV[5]), ARGV[6]
if redis.call('HEXISTS', p .. '$K_AGENTS', agent) == 0 then return {} end
local qkey, setkey = p .. '$K_QUEUE' .. w, p .. '$K_INFLIGHT' .. agent
local out, taken, size = {}, 0, 0
while taken < n and size < budget do
  local id = redis.call('LPOP', qkey)
  if not id then break end
  local key = tkey(p, id)
  local t = redis.call('HMGET', key, '$F_STATE', '$F_ATTEMPT', '$F_ITEM')
  if t[1] == '$WAITING' then
    redis.call('HSET', key, '$F_STATE', '$ADMITTED', '$F_AGENT', agent, '$F_ADMITTED_AT', now)
    redis.call('SADD', setkey, id)
    out[#out + 1] = id
    out[#out + 1] = t[2]
    out[#out + 1] = t[3]
    taken = taken + 1
    size = size + #t[3]
  end
end
return out
