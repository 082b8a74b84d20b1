-- join.lua: an agent registers; in the same step, what it holds is reconciled with what the
-- ledger says it holds, before it may be given anything. ADMITTED or EXECUTING -> WAITING
-- (or FAILED, AgentLost).
--
-- Keys: $K_AGENTS, $K_SEEN, $K_INFLIGHT<agent>, $K_TOKEN<id>, $K_QUEUE<weight>, $K_TASKS,
-- $K_COUNTS, $K_GAUGES (lib.lua).
-- ARGV[1] prefix, ARGV[2] agent, ARGV[3] incarnation (random per agent process),
-- ARGV[4] msgpack array of the ids the agent holds, ARGV[5] msgpack registration record
-- (a map with at least incarnation), ARGV[6] now, ARGV[7] max attempts, ARGV[8] ttl seconds,
-- ARGV[9] the AgentLost message, ARGV[10] msgpack array of [task name, "1"|"0"] rules.
-- The same process reconnecting: tokens the ledger gave it that it does not hold never
-- reached it and go back with the same attempt. A new process under a known name: its
-- predecessor's tokens may have run, so they go back as after a loss.
-- Tokens it holds that are no longer its own (given to another agent after it was declared
-- lost, or failed, or finished) are revoked: it must drop them and report nothing for them.
-- Returns {revoked ids, failed flat, requeued flat, restarted 1|0}.
local p, agent, incarnation = ARGV[1], ARGV[2], ARGV[3]
local now, maxa, ttl, message = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local setkey = p .. '$K_INFLIGHT' .. agent
local restarted = 0
local prev = redis.call('HGET', p .. '$K_AGENTS', agent)
if prev and cmsgpack.unpack(prev).incarnation ~= incarnation then restarted = 1 end
local held = {}
for _, id in ipairs(cmsgpack.unpack(ARGV[4])) do held[id] = true end
local acc = new_tally()
for _, id in ipairs(redis.call('SMEMBERS', setkey)) do
  if restarted == 1 then
    tally(acc, id, give_back(p, id, agent, 'lost', maxa, ttl, message, now))
    redis.call('SREM', setkey, id)
  elseif not held[id] then
    tally(acc, id, give_back(p, id, agent, 'transit', maxa, ttl, message, now))
    redis.call('SREM', setkey, id)
  end
end
local revoked = {}
for id, _ in pairs(held) do
  local t = redis.call('HMGET', tkey(p, id), '$F_STATE', '$F_AGENT')
  if restarted == 1 or not held_by(t[1], t[2], agent) then revoked[#revoked + 1] = id end
end
redis.call('HSET', p .. '$K_AGENTS', agent, ARGV[5])
redis.call('ZADD', p .. '$K_SEEN', now, agent)
for _, rule in ipairs(cmsgpack.unpack(ARGV[10])) do
  redis.call('HSET', p .. '$K_TASKS', rule[1], rule[2])
end
local tallied = finish_tally(p, acc)
return {revoked, tallied[1], tallied[2], restarted}
