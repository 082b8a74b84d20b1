-- kill.lua: kill one token wherever it is. WAITING -> KILLED here; a held one is forwarded
-- (the gateway asks its agent to cancel it: killed if queued there, else asked to stop).
--
-- Keys: $K_TOKEN<id>, $K_QUEUE<weight>, $K_COUNTS (lib.lua).
-- ARGV[1] prefix, ARGV[2] token id, ARGV[3] ttl seconds, ARGV[4] message, ARGV[5] now.
-- A killed waiting token leaves its queue at once, so queue lengths count live tokens only.
-- Returns {outcome, agent}: 'killed'; 'forwarded' with the agent holding it; 'finished'; or
-- 'unknown'.
local p, id, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local key = tkey(p, id)
local t = redis.call('HMGET', key, '$F_STATE', '$F_AGENT', '$F_ROUTE', '$F_WEIGHT', '$F_KEEP')
if not t[1] then return {'unknown', ''} end
t[3] = route(t[3], t[4])
if t[1] == '$WAITING' then
  move_token(key, id, t[1], '$KILLED', '$F_ERROR_TYPE', 'TokenKilled',
             '$F_ERROR_MESSAGE', ARGV[4], '$F_FINISHED_AT', ARGV[5])
  redis.call('HDEL', key, '$F_ITEM')
  expire_final(key, ttl, t[5])
  redis.call('LREM', p .. '$K_QUEUE' .. t[3], 1, id)
  redis.call('HINCRBY', p .. '$K_COUNTS', 'killed', 1)
  return {'killed', ''}
end
if t[1] == '$ADMITTED' or t[1] == '$EXECUTING' then return {'forwarded', t[2] or ''} end
return {'finished', ''}
