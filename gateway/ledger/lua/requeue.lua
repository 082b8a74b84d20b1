-- requeue.lua: give back tokens an agent holds. ADMITTED or EXECUTING -> WAITING (front of
-- the queue), or -> FAILED (AgentLost) when a lost agent may have run them and they may not
-- run again.
--
-- Keys: $K_INFLIGHT<agent>, $K_TOKEN<id>, $K_QUEUE<weight>, $K_TASKS, $K_COUNTS, $K_GAUGES,
-- $K_AGENTS, $K_SEEN (lib.lua).
-- ARGV[1] prefix, ARGV[2] agent, ARGV[3] mode: 'transit' (they never reached the agent: same
-- attempt), 'returned' (the agent never started them: same attempt, if no start was
-- reported) or 'lost' (attempt + 1, or AgentLost), ARGV[4] max attempts, ARGV[5] ttl seconds,
-- ARGV[6] the AgentLost message, ARGV[7] now,
-- ARGV[8] msgpack array of ids, or "" for every token the agent holds,
-- ARGV[9] "1" to also deregister the agent (declared lost: it gets no more tokens).
-- Returns {failed, requeued}: failed = flat [id, attempt, session, ...]; requeued = flat
-- [weight, n, ...].
local p, agent, mode, maxa = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ttl, message, now = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local setkey = p .. '$K_INFLIGHT' .. agent
local ids
if ARGV[8] == '' then ids = redis.call('SMEMBERS', setkey) else ids = cmsgpack.unpack(ARGV[8]) end
local acc = new_tally()
for _, id in ipairs(ids) do
  local kind, a, b = give_back(p, id, agent, mode, maxa, ttl, message, now)
  tally(acc, id, kind, a, b)
  if kind ~= 'kept' then redis.call('SREM', setkey, id) end
end
if ARGV[9] == '1' then
  redis.call('HDEL', p .. '$K_AGENTS', agent)
  redis.call('ZREM', p .. '$K_SEEN', agent)
end
return finish_tally(p, acc)
