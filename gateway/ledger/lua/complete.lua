-- complete.lua: the final outcome of one attempt each, reported by the agent that held them.
-- ADMITTED or EXECUTING -> COMPLETED | FAILED | KILLED (KILLED: killed before it started, or
-- cancelled while it ran and then stopped; its error type says which, TokenKilled or
-- TokenCancelled, in the ResultItem).
--
-- Keys: $K_TOKEN<id> (gains $F_RESULT; keeps $F_AGENT, the agent that ran it; its $F_ITEM is
-- emptied unless FAILED: a failed call's arguments stay, for its detail), $K_INFLIGHT<agent>,
-- $K_COUNTS, $K_GAUGES (lib.lua).
-- ARGV[1] prefix, ARGV[2] agent, ARGV[3] result ttl seconds,
-- ARGV[4] one flat msgpack array: id, state, attempt, result bytes, id, ... (four values per
-- outcome; one table to unpack, not one per outcome).
-- Fenced: applied only while this agent holds the token at this attempt. A late report from
-- an agent declared lost, or a report of an older attempt, changes nothing. A report this
-- agent made of this attempt before (its frame resent: the reply to the first one was lost,
-- or the gateway died before acking it) changes nothing either, but is told apart, so that
-- its outcome can still reach the client.
-- Cost per token: HMGET (the fence), one HSET (state, result, the item emptied), EXPIRE
-- (a keyed call's hash: its key TTL when longer, lib.lua expire_final); the
-- ids leave the agent's set in one SREM per batch.
-- Returns, msgpack-packed, one flat array of two values per item: 1, creation time (applied);
-- 2, creation time (stored already from this same report); or 0, "" (ignored).
local p, agent, ttl = ARGV[1], ARGV[2], ARGV[3]  -- ttl as sent: no number to format
local out, counts, wasexec, done = {}, {}, 0, {}
local rows = cmsgpack.unpack(ARGV[4])
for a = 1, #rows, 4 do
  local id, state, attempt, result = rows[a], rows[a + 1], rows[a + 2], rows[a + 3]
  local key = tkey(p, id)
  local t = redis.call('HMGET', key, '$F_STATE', '$F_AGENT', '$F_ATTEMPT', '$F_CREATED',
                       '$F_KEEP')
  local mine = t[2] == agent and (tonumber(t[3]) or 1) == attempt
  local ok = mine and (t[1] == '$ADMITTED' or t[1] == '$EXECUTING')
  if ok then
    if state == '$FAILED' then
      move_token(key, id, t[1], state, '$F_RESULT', result)
    else
      move_token(key, id, t[1], state, '$F_RESULT', result, '$F_ITEM', '')
    end
    expire_final(key, ttl, t[5])
    done[#done + 1] = id
    if t[1] == '$EXECUTING' then wasexec = wasexec + 1 end
    counts[state] = (counts[state] or 0) + 1
    out[#out + 1] = 1
    out[#out + 1] = t[4] or '0'
  elseif mine and t[1] == state then
    out[#out + 1] = 2
    out[#out + 1] = t[4] or '0'
  else
    out[#out + 1] = 0
    out[#out + 1] = ''
  end
end
if #done > 0 then add_all('SREM', p .. '$K_INFLIGHT' .. agent, done) end
for state, n in pairs(counts) do redis.call('HINCRBY', p .. '$K_COUNTS', state, n) end
if wasexec > 0 then executing_changed(p, agent, -wasexec) end
return cmsgpack.pack(out)
