-- submit.lua: store one batch of new tokens; some go straight to an agent, the rest wait.
--
-- Keys (built from the prefix ARGV[1]; one Redis instance, no cluster slots):
--   <p>t:<id>           hash, one per token: s state, a attempt, w weight, i idempotent (1/0),
--                       d the submitted TaskItem (protobuf bytes), g agent holding it, c created,
--                       o the client session owed its result
--   <p>q:<weight>       list of waiting token ids, FIFO (requeues are pushed to the front)
--   <p>inflight:<agent> set of token ids dispatched to that agent and not yet final
--   <p>counts           hash of counters: submitted, completed, failed, killed, requeued, lost
-- ARGV[2] now (unix seconds)
-- ARGV[3] msgpack array of items [id, weight, idempotent, item_bytes, agent, session];
--         agent "" = wait
-- Returns one integer per item: 1 dispatched to its agent, 0 queued, -1 duplicate id (the
-- token already exists; nothing changed).
local p, now = ARGV[1], ARGV[2]
local items = cmsgpack.unpack(ARGV[3])
local out, queued, inflight, new = {}, {}, {}, 0
for i, it in ipairs(items) do
  local id, w, idem, blob, agent, owner = it[1], it[2], it[3], it[4], it[5], it[6]
  local key = p .. 't:' .. id
  if redis.call('EXISTS', key) == 1 then
    out[i] = -1
  else
    new = new + 1
    if agent ~= '' then
      redis.call('HSET', key, 's', 'admitted', 'a', 1, 'w', w, 'i', idem, 'd', blob,
                 'g', agent, 'c', now, 'o', owner)
      local set = inflight[agent]
      if not set then set = {}; inflight[agent] = set end
      set[#set + 1] = id
      out[i] = 1
    else
      redis.call('HSET', key, 's', 'waiting', 'a', 1, 'w', w, 'i', idem, 'd', blob, 'c', now,
                 'o', owner)
      local q = queued[w]
      if not q then q = {}; queued[w] = q end
      q[#q + 1] = id
      out[i] = 0
    end
  end
end
for agent, ids in pairs(inflight) do
  redis.call('SADD', p .. 'inflight:' .. agent, unpack(ids))
end
for w, ids in pairs(queued) do
  redis.call('RPUSH', p .. 'q:' .. w, unpack(ids))
end
if new > 0 then redis.call('HINCRBY', p .. 'counts', 'submitted', new) end
return out
