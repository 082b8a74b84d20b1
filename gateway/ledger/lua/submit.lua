-- submit.lua: store a batch of new tokens. (new) -> WAITING, or -> ADMITTED to the agent the
-- gateway placed it on (if that agent is still registered; else it waits).
--
-- Keys: $K_TOKEN<id>, $K_QUEUE<queue>, $K_QUEUES, $K_INFLIGHT<agent>, $K_AGENTS, $K_COUNTS
-- (lib.lua).
-- ARGV[1] prefix, ARGV[2] now (unix seconds),
-- ARGV[3] one flat msgpack array of groups: owner, session, n, then n rows of seven values
-- each: id, route ("<queue>\t<session>\t<task>", the $F_ROUTE field as stored), queue (its
-- weight, or "<weight>|<task>|<labels>" for the need it waits with: gateway/needs.py),
-- idempotent 1|0, item bytes, agent or "", key digest or "" (a frame is one group: the owner
-- and session travel once; one flat array, not a table per row, to unpack).
-- ARGV[4] seconds a keyed call's hash is kept once final (the key TTL; $F_KEEP).
-- Returns, msgpack-packed (one string to parse, not one reply per item), one integer per
-- item: 1 admitted to its agent, 0 waiting, -1 duplicate id (a token with this id exists,
-- also earlier in the same batch: nothing changed), -2 conflict (a keyed call whose id exists
-- with another digest, or with none: the same idempotency key for another call; nothing
-- changed).
-- Idempotency keys: a keyed call's id is derived from its key (shared/call_options.py), so
-- the same key again is a repeated id, answered as above; its digest ($F_KEY) tells a repeat
-- of the same call from another call under the same key.
-- A run whose reply was lost (Redis restarted, the connection broke) is run again by the
-- gateway: a token this same session stored, still where this item would put it (ADMITTED
-- to the same agent, or WAITING), is answered as that first run answered it (1 or 0) and
-- changes nothing, so the gateway still sends it to its agent. Any other existing id (one
-- stored earlier in this same batch too) is -1.
-- Cost: one EXISTS over the whole batch finds whether any id is known; only then is each
-- token looked at one by one. A new token is one HSET of six or seven fields (weight, session
-- and task are one, $F_ROUTE): its attempt (1) and idempotent flag
-- ("1") are not written when they have their default values (readers default them; a
-- token that may not run again gets its "0" in a second HSET).
local p, now, keep = ARGV[1], ARGV[2], ARGV[4]
local flat = cmsgpack.unpack(ARGV[3])
local keys, at = {}, 1
while at <= #flat do
  local n = flat[at + 2]
  for r = at + 3, at + 2 + 7 * n, 7 do keys[#keys + 1] = tkey(p, flat[r]) end
  at = at + 3 + 7 * n
end
local known = keys_all('EXISTS', keys) > 0
local out, new, live, held, waiting, made = {}, 0, {}, {}, {}, {}
local i = 0
at = 1
while at <= #flat do
  local owner, session, n = flat[at], flat[at + 1], flat[at + 2]
  for r = at + 3, at + 2 + 7 * n, 7 do
    i = i + 1
    local id, x, w, idem, blob, agent = flat[r], flat[r + 1], flat[r + 2], flat[r + 3],
                                        flat[r + 4], flat[r + 5]
    local digest = flat[r + 6]
    local key = keys[i]
    local was = known and redis.call('HMGET', key, '$F_STATE', '$F_ROUTE', '$F_AGENT',
                                     '$F_SESSION', '$F_KEY')
    if was and was[1] then was[2] = select(2, route(was[2], nil, was[4])) end
    if made[id] or (was and was[1]) then
      out[i] = -1
      if digest ~= '' and was and was[1] and was[5] ~= digest then
        out[i] = -2
      elseif was and was[1] and was[2] == session and not made[id] then
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
        local ids = held[agent]
        if not ids then ids = {}; held[agent] = ids end
        ids[#ids + 1] = id
        out[i] = 1
        move_token(key, id, nil, '$ADMITTED', '$F_AGENT', agent, '$F_ROUTE', x,
                   '$F_ITEM', blob, '$F_OWNER', owner, '$F_CREATED', now)
      else
        local ids = waiting[w]
        if not ids then ids = {}; waiting[w] = ids end
        ids[#ids + 1] = id
        out[i] = 0
        move_token(key, id, nil, '$WAITING', '$F_ROUTE', x, '$F_ITEM', blob,
                   '$F_OWNER', owner, '$F_CREATED', now)
      end
      if idem ~= 1 then redis.call('HSET', key, '$F_IDEMPOTENT', '0') end
      if digest ~= '' then redis.call('HSET', key, '$F_KEY', digest, '$F_KEEP', keep) end
    end
  end
  at = at + 3 + 7 * n
end
for agent, ids in pairs(held) do add_all('SADD', p .. '$K_INFLIGHT' .. agent, ids) end
for w, ids in pairs(waiting) do
  add_all('RPUSH', p .. '$K_QUEUE' .. w, ids)
  redis.call('SADD', p .. '$K_QUEUES', w)
end
if new > 0 then redis.call('HINCRBY', p .. '$K_COUNTS', 'submitted', new) end
return cmsgpack.pack(out)
