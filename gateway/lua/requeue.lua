-- requeue.lua: give back the tokens an agent held (it was lost, or they never reached it).
--
-- Keys: <p>inflight:<agent> (set), <p>t:<id> (hash), <p>q:<weight> (list), <p>counts.
-- ARGV[1] prefix, ARGV[2] agent, ARGV[3] max attempts, ARGV[4] ttl seconds,
-- ARGV[5] msgpack array of token ids, or "" for every token in the agent's inflight set.
-- ARGV[6] the error message for tokens that may not run again.
-- ARGV[7] "1" when the tokens never reached the agent (lost in transit): they go back with
-- the same attempt, whatever their idempotency.
-- A token still held by this agent and not final goes back to the FRONT of its weight's
-- queue with attempt + 1 (a retry runs ahead of new work), unless it is not idempotent or has
-- used its attempts: then it is FAILED with error type AgentLost (fields e and m).
-- Returns {failed, requeued}: failed = flat [id, attempt, ...]; requeued = flat [weight, n, ...]
local p, agent, maxa, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local setkey = p .. 'inflight:' .. agent
local ids
if ARGV[5] == '' then ids = redis.call('SMEMBERS', setkey) else ids = cmsgpack.unpack(ARGV[5]) end
local failed, perw, nreq = {}, {}, 0
for _, id in ipairs(ids) do
  local key = p .. 't:' .. id
  local t = redis.call('HMGET', key, 's', 'a', 'i', 'w', 'g')
  if (t[1] == 'admitted' or t[1] == 'executing') and t[5] == agent then
    local attempt = tonumber(t[2]) or 1
    local transit = ARGV[7] == '1'
    if not transit and (t[3] == '0' or attempt >= maxa) then
      redis.call('HSET', key, 's', 'failed', 'e', 'AgentLost', 'm', ARGV[6])
      redis.call('HDEL', key, 'd', 'g')
      redis.call('EXPIRE', key, ttl)
      failed[#failed + 1] = id
      failed[#failed + 1] = attempt
    else
      if not transit then attempt = attempt + 1 end
      redis.call('HSET', key, 's', 'waiting', 'a', attempt)
      redis.call('HDEL', key, 'g')
      redis.call('LPUSH', p .. 'q:' .. t[4], id)
      perw[t[4]] = (perw[t[4]] or 0) + 1
      nreq = nreq + 1
    end
  end
  redis.call('SREM', setkey, id)
end
local requeued = {}
for w, n in pairs(perw) do requeued[#requeued + 1] = w; requeued[#requeued + 1] = n end
if nreq > 0 then redis.call('HINCRBY', p .. 'counts', 'requeued', nreq) end
if #failed > 0 then
  redis.call('HINCRBY', p .. 'counts', 'failed', #failed / 2)
  redis.call('HINCRBY', p .. 'counts', 'lost', #failed / 2)
end
return {failed, requeued}
