-- submit.lua: store a batch of new tokens. (new) -> WAITING, or -> ADMITTED to the agent the
-- gateway placed it on (if that agent is still registered; else it waits).
--
-- Keys: $K_TOKEN<id>, $K_QUEUE<weight>, $K_INFLIGHT<agent>, $K_AGENTS, $K_COUNTS (lib.lua).
-- ARGV[1] prefix, ARGV[2] now (unix seconds),
-- ARGV[3] msgpack array of [id, task, weight, idempotent 1|0, item bytes, agent or "", owner,
-- session].
-- Returns, msgpack-packed (one string to parse, not one reply per item), one integer per
-- item: 1 admitted to its agent, 0 waiting, -1 duplicate id (a token with this id exists,
-- also earlier in the same batch: nothing changed).
-- A run whose reply was lost (Redis restarted, the connection broke) is run again by the
-- gateway: a token this same session stored, still where this item would put it (ADMITTED
-- to the same agent, or WAITING), is answered as that first run answered it (1 or 0) and
-- changes nothing, so the gateway still sends it to its agent. Any other existing id (one
-- stored earlier in this same batch too) is -1.
local p, now = ARGV[1], ARGV[2]
local items = cmsgpack.unpack(ARGV[3])
local out, new, live, held, waiting, made = {}, 0, {}, {}, {}, {}
for i, it in ipairs(items) do
  local id, task, w, idem, blob, agent, owner = it[1], it[2], it[3], it[4], it[5], it[6], it[7]
  local session = it[8]
  local key = tkey(p, id)
  local was = redis.call('HMGET', key, '$F_STATE', '$F_SESSION', '$F_AGENT')
  if was[1] then
    out[i] = -1
    if was[2] == session and not made[id] then
      if was[1] == '$WAITING' then out[i] = 0
      elseif was[1] == '$ADMITTED' and agent ~= '' and was[3] == agent then out[i] = 1 end
    end
  else
    new = new + 1
    made[id] = true
    if agent ~= '' then
      if live[agent] == nil then
        live[agent] = redis.call('HEXISTS', p .. '$K_AGENTS', agent) == 1
      end
      if not live[agent] then agent = '' end
    end
    if agent ~= '' then
      redis.call('HSET', key, '$F_STATE', '$ADMITTED', '$F_ATTEMPT', 1, '$F_WEIGHT', w,
                 '$F_IDEMPOTENT', idem, '$F_TASK', task, '$F_ITEM', blob, '$F_AGENT', agent,
                 '$F_OWNER', owner, '$F_SESSION', session, '$F_CREATED', now)
      local ids = held[agent]
      if not ids then ids = {}; held[agent] = ids end
      ids[#ids + 1] = id
      out[i] = 1
    else
      redis.call('HSET', key, '$F_STATE', '$WAITING', '$F_ATTEMPT', 1, '$F_WEIGHT', w,
                 '$F_IDEMPOTENT', idem, '$F_TASK', task, '$F_ITEM', blob, '$F_OWNER', owner,
                 '$F_SESSION', session, '$F_CREATED', now)
      local ids = waiting[w]
      if not ids then ids = {}; waiting[w] = ids end
      ids[#ids + 1] = id
      out[i] = 0
    end
  end
end
for agent, ids in pairs(held) do add_all('SADD', p .. '$K_INFLIGHT' .. agent, ids) end
for w, ids in pairs(waiting) do add_all('RPUSH', p .. '$K_QUEUE' .. w, ids) end
if new > 0 then redis.call('HINCRBY', p .. '$K_COUNTS', 'submitted', new) end
return cmsgpack.pack(out)
