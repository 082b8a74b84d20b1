-- submit.lua: store a batch of new tokens. (new) -> WAITING, or -> ADMITTED to the agent the
-- gateway placed it on (if that agent is still registered; else it waits).
--
-- Keys: $K_TOKEN<id>, $K_QUEUE<weight>, $K_INFLIGHT<agent>, $K_AGENTS, $K_COUNTS (lib.lua).
-- ARGV[1] prefix, ARGV[2] now (unix seconds),
-- ARGV[3] msgpack array of [id, task, weight, idempotent 1|0, item bytes, agent or "", owner,
-- session].
-- Returns one integer per item: 1 admitted to its agent, 0 waiting, -1 duplicate id (a token
-- with this id exists, also earlier in the same batch: nothing changed).
local p, now = ARGV[1], ARGV[2]
local items = cmsgpack.unpack(ARGV[3])
local out, new, live = {}, 0, {}
for i, it in ipairs(items) do
  local id, task, w, idem, blob, agent, owner = it[1], it[2], it[3], it[4], it[5], it[6], it[7]
  local session = it[8]
  local key = tkey(p, id)
  if redis.call('EXISTS', key) == 1 then
    out[i] = -1
  else
    new = new + 1
    if agent ~= '' then
      if live[agent] == nil then
        live[agent] = redis.call('HEXISTS', p .. '$K_AGENTS', agent) == 1
      end
      if not live[agent] then agent = '' end
    end
    if agent ~= '' then
      redis.call('HSET', key, '$F_STATE', '$ADMITTED', '$F_ATTEMPT', 1, '$F_WEIGHT', w,
                 '$F_IDEMPOTENT', idem, '$F_TASK', task, '$F_ITEM', blob, '$F_AGENT', agent,
                 '$F_OWNER', owner, '$F_SESSION', session, '$F_CREATED', now,
                 '$F_ADMITTED_AT', now)
      redis.call('SADD', p .. '$K_INFLIGHT' .. agent, id)
      out[i] = 1
    else
      redis.call('HSET', key, '$F_STATE', '$WAITING', '$F_ATTEMPT', 1, '$F_WEIGHT', w,
                 '$F_IDEMPOTENT', idem, '$F_TASK', task, '$F_ITEM', blob, '$F_OWNER', owner,
                 '$F_SESSION', session, '$F_CREATED', now)
      redis.call('RPUSH', p .. '$K_QUEUE' .. w, id)
      out[i] = 0
    end
  end
end
if new > 0 then redis.call('HINCRBY', p .. '$K_COUNTS', 'submitted', new) end
return out
