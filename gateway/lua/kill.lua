-- kill.lua: kill one token wherever it waits.
--
-- Keys: <p>t:<id> (hash), <p>counts. The id stays in its queue list and is skipped when
-- claim.lua pops it.
-- ARGV[1] prefix, ARGV[2] token id, ARGV[3] ttl seconds, ARGV[4] message
-- Returns {outcome, agent}: outcome 'killed' (it was waiting here; now KILLED),
-- 'forwarded' (an agent holds it: agent names which), 'finished', or 'unknown'.
local p, id, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local key = p .. 't:' .. id
local t = redis.call('HMGET', key, 's', 'g')
local s = t[1]
if not s then return {'unknown', ''} end
if s == 'waiting' then
  redis.call('HSET', key, 's', 'killed', 'e', 'TokenKilled', 'm', ARGV[4])
  redis.call('HDEL', key, 'd')
  redis.call('EXPIRE', key, ttl)
  redis.call('HINCRBY', p .. 'counts', 'killed', 1)
  return {'killed', ''}
end
if s == 'admitted' or s == 'executing' then return {'forwarded', t[2] or ''} end
return {'finished', ''}
