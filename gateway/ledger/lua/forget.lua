-- forget.lua: the client has these results: delete the final tokens now, not at their TTL.
-- COMPLETED | FAILED | KILLED -> (deleted).
--
-- Keys: $K_TOKEN<id> (lib.lua).
-- ARGV[1] prefix, ARGV[2] msgpack array of token ids.
-- A token not final is left alone (results reach clients only once stored).
-- Returns the number deleted.
local p = ARGV[1]
local deleted = 0
for _, id in ipairs(cmsgpack.unpack(ARGV[2])) do
  local key = tkey(p, id)
  local s = redis.call('HGET', key, '$F_STATE')
  if s == '$COMPLETED' or s == '$FAILED' or s == '$KILLED' then
    redis.call('DEL', key)
    deleted = deleted + 1
  end
end
return deleted
