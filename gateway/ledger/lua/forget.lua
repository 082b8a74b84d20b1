-- forget.lua: the client has these results: delete the final tokens now, not at their TTL.
-- COMPLETED | FAILED | KILLED -> (deleted).
--
-- Keys: $K_TOKEN<id> (lib.lua).
-- ARGV[1] prefix, ARGV[2] msgpack array of token ids, ARGV[3] the client id that has them.
-- A token not final is left alone (results reach clients only once stored), and so is one
-- another client owns, and one called with an idempotency key (it answers its key until it
-- expires: lib.lua expire_final). Each token is looked at (HMGET); those to drop go in one DEL.
-- Returns the number deleted.
local p, owner = ARGV[1], ARGV[3]
local gone = {}
for _, id in ipairs(cmsgpack.unpack(ARGV[2])) do
  local key = tkey(p, id)
  local t = redis.call('HMGET', key, '$F_STATE', '$F_OWNER', '$F_KEY')
  local s = t[1]
  if t[2] == owner and not t[3] and (s == '$COMPLETED' or s == '$FAILED' or s == '$KILLED') then
    check_move(id, s, nil)
    gone[#gone + 1] = key
  end
end
if #gone == 0 then return 0 end
return keys_all('DEL', gone)
