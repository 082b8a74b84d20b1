-- start.lua: the agent holding these tokens began running them. ADMITTED -> EXECUTING.
--
-- Keys: $K_TOKEN<id>, $K_GAUGES (lib.lua).
-- ARGV[1] prefix, ARGV[2] agent, ARGV[3] one flat msgpack array: id, attempt, started_at,
-- id, ... (three values per report).
-- Fenced: applied only to a token this agent holds at this attempt, and still ADMITTED.
-- Returns how many were applied.
local p, agent = ARGV[1], ARGV[2]
local n = 0
local rows = cmsgpack.unpack(ARGV[3])
for a = 1, #rows, 3 do
  local key = tkey(p, rows[a])
  local t = redis.call('HMGET', key, '$F_STATE', '$F_AGENT', '$F_ATTEMPT')
  if t[1] == '$ADMITTED' and t[2] == agent and (tonumber(t[3]) or 1) == rows[a + 1] then
    move_token(key, rows[a], t[1], '$EXECUTING', '$F_STARTED_AT', rows[a + 2])
    n = n + 1
  end
end
if n > 0 then executing_changed(p, agent, n) end
return n
