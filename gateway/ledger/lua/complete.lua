-- complete.lua: the final outcome of one attempt each, reported by the agent that held them.
-- ADMITTED or EXECUTING -> COMPLETED | FAILED; ADMITTED -> KILLED (killed before it started).
--
-- Keys: $K_TOKEN<id> (gains $F_RESULT; loses $F_ITEM unless FAILED: a failed call's
-- arguments stay, for its detail), $K_INFLIGHT<agent>, $K_COUNTS,
-- $K_GAUGES (lib.lua).
-- ARGV[1] prefix, ARGV[2] agent, ARGV[3] result ttl seconds, ARGV[4] now,
-- ARGV[5] msgpack array of [id, state, attempt, result bytes].
-- Fenced: applied only while this agent holds the token at this attempt. A late report from
-- an agent declared lost, a report of an older attempt, or a resent frame changes nothing.
-- Returns one value per item: the token's creation time (applied) or 0 (ignored).
local p, agent, ttl, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out, counts, wasexec = {}, {}, 0
for i, it in ipairs(cmsgpack.unpack(ARGV[5])) do
  local id, state, attempt, result = it[1], it[2], tonumber(it[3]), it[4]
  local key = tkey(p, id)
  local t = redis.call('HMGET', key, '$F_STATE', '$F_AGENT', '$F_ATTEMPT', '$F_CREATED')
  local ok = held_by(t[1], t[2], agent) and tonumber(t[3]) == attempt
  if ok and state == '$KILLED' and t[1] ~= '$ADMITTED' then ok = false end
  if ok then
    redis.call('HSET', key, '$F_STATE', state, '$F_RESULT', result, '$F_FINISHED_AT', now)
    redis.call('HDEL', key, '$F_AGENT')
    if state ~= '$FAILED' then redis.call('HDEL', key, '$F_ITEM') end
    redis.call('EXPIRE', key, ttl)
    redis.call('SREM', p .. '$K_INFLIGHT' .. agent, id)
    if t[1] == '$EXECUTING' then wasexec = wasexec + 1 end
    counts[state] = (counts[state] or 0) + 1
    out[i] = t[4] or '0'
  else
    out[i] = 0
  end
end
for state, n in pairs(counts) do redis.call('HINCRBY', p .. '$K_COUNTS', state, n) end
if wasexec > 0 then executing_changed(p, agent, -wasexec) end
return out
