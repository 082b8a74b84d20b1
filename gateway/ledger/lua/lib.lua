-- lib.lua: what every script shares; it is put in front of each script when loaded.
--
-- The scripts are templates: $$NAME stands for a key, a field or a state name of
-- tokengate/gateway/ledger/schema.py (filled in once, at load). Keys, after the prefix p:
--   $K_TOKEN<id>        hash per token: $F_STATE state, $F_ATTEMPT attempt (absent: 1),
--                       $F_ROUTE "<queue>\t<session owed its outcome>\t<task name>" (one
--                       field for three read only off the hot path, see route()),
--                       $F_IDEMPOTENT "1"/"0" (absent: "1"),
--                       $F_ITEM submitted TaskItem ("" once final, unless FAILED),
--                       $F_AGENT agent holding it (once final, the one that ran it),
--                       $F_OWNER client id, $F_CREATED / $F_STARTED_AT /
--                       $F_FINISHED_AT (outcomes the gateway decided) times, $F_RESULT the
--                       final ResultItem, $F_ERROR_TYPE / $F_ERROR_MESSAGE (gateway outcomes),
--                       $F_KEY / $F_KEEP (calls with an idempotency key: the digest of the
--                       call, and seconds the hash is kept once final)
--   $K_QUEUE<queue>     list of waiting ids, FIFO; requeued ids go to the front; a queue is
--                       a weight, or "<weight>|<task>|<labels>" (gateway/needs.py)
--   $K_QUEUES           set of the queue names that may hold ids
--   $K_INFLIGHT<agent>  set of ids the agent holds ($ADMITTED or $EXECUTING)
--   $K_AGENTS           hash agent -> msgpack record; only registered agents get tokens
--   $K_SEEN             zset agent -> last heartbeat
--   $K_COUNTS           hash of counters; $K_GAUGES hash with the $EXECUTING count, in all
--                       and per agent ($EXECUTING@<agent>)
--   $K_TASKS            hash task name -> "1" may run again after an agent loss, "0" never
-- No script stops half way: inputs are checked by the gateway, and nothing here can fail
-- on a large batch (no unpack of a batch into one command).
--
-- The state table: every script is loaded behind a prelude generated from
-- tokengate/gateway/ledger/transitions.py (its step's row; transitions.lua_prelude), and
-- writes a token's $F_STATE only through its move_token(key, id, from, to, ...), or, to
-- delete a final token, checks the move with check_move(id, from, nil) first. A move the row
-- does not list stops the script with an ILLEGAL_TRANSITION error (a bug: each script reads
-- the state before it decides); the ledger raises it as IllegalTransition.
--
-- The fence (every script but lease.lua): KEYS[1] is the shard's epoch key $K_EPOCH and the
-- first argument the epoch the calling gateway holds. A gateway whose epoch is not the
-- shard's (another gateway took the shard while it was paused or cut off) is refused with
-- a FENCED error before anything is read or written. The epoch is then taken off ARGV, so
-- each script's own arguments start at ARGV[1], the prefix, as its header says. All keys are
-- under the shard's prefix, whose hash tag puts them in one Redis Cluster slot.

local epoch_now = redis.call('GET', KEYS[1])
if epoch_now ~= ARGV[1] then
  if not epoch_now then  -- Redis lost its data: the holder takes the shard again (lease.lua)
    return redis.error_reply('NOEPOCH the shard has no fencing epoch (Redis lost its data)')
  end
  return redis.error_reply('FENCED the shard\'s epoch is ' .. tostring(epoch_now) ..
                           ', this gateway holds ' .. tostring(ARGV[1]))
end
table.remove(ARGV, 1)

local function tkey(p, id) return p .. '$K_TOKEN' .. id end

-- One command per chunk of ids (SADD, SREM, RPUSH): a batch of any size, never one huge
-- unpack.
local function add_all(command, key, ids)
  for i = 1, #ids, 1000 do
    redis.call(command, key, unpack(ids, i, math.min(i + 999, #ids)))
  end
end

-- One command per chunk of keys (DEL, EXISTS); the sum of the replies.
local function keys_all(command, keys)
  local n = 0
  for i = 1, #keys, 1000 do
    n = n + redis.call(command, unpack(keys, i, math.min(i + 999, #keys)))
  end
  return n
end

-- A token's weight, session and task from its $F_ROUTE field (the task last: any text), or,
-- for a token stored before that field existed, from w, n and k as read (HMGET order).
local function route(x, w, n, k)
  if not x then return w, n, k end
  return string.match(x, '^([^\t]*)\t([^\t]*)\t(.*)$$')
end

-- A final token's hash expires after the result ttl, or after its idempotency key's TTL
-- (keep: its $F_KEEP, seconds, written at submit for keyed calls) when that is longer: the
-- key and the outcome it answers with go together.
local function expire_final(key, ttl, keep)
  local n, k = tonumber(ttl), tonumber(keep)
  if k and k > n then n = k end
  redis.call('EXPIRE', key, n)
end

local function executing_changed(p, agent, n)
  redis.call('HINCRBY', p .. '$K_GAUGES', '$EXECUTING', n)
  redis.call('HINCRBY', p .. '$K_GAUGES', '$EXECUTING@' .. agent, n)
end

local function held_by(state, holder, agent)
  return (state == '$ADMITTED' or state == '$EXECUTING') and holder == agent
end

-- Give back one token that `agent` holds. mode 'transit': it never reached the agent, so it
-- returns to the front of its queue with the same attempt. mode 'returned': the agent says
-- it never started it (it is leaving): the same, unless a start was reported (then left to
-- the loss that follows). mode 'lost': the agent may have
-- run it, so it returns with attempt + 1, unless it may not run again (not idempotent by the
-- task's rule or the submitted flag, or out of attempts): then it is FAILED with AgentLost.
-- Returns 'requeued', weight; or 'failed', attempt, session; 'kept' (a returned token that
-- started); or nil if agent does not hold it.
local function give_back(p, id, agent, mode, maxa, ttl, message, now)
  local key = tkey(p, id)
  local t = redis.call('HMGET', key, '$F_STATE', '$F_AGENT', '$F_ATTEMPT', '$F_IDEMPOTENT',
                       '$F_ROUTE', '$F_WEIGHT', '$F_SESSION', '$F_TASK', '$F_KEEP')
  if not held_by(t[1], t[2], agent) then return nil end
  t[5], t[7], t[6] = route(t[5], t[6], t[7], t[8])
  if mode == 'returned' and t[1] == '$EXECUTING' then return 'kept' end
  if t[1] == '$EXECUTING' then executing_changed(p, agent, -1) end
  local attempt = tonumber(t[3]) or 1
  if mode == 'lost' then
    local rule = t[6] and redis.call('HGET', p .. '$K_TASKS', t[6])
    if t[4] == '0' or rule == '0' or attempt >= maxa then
      move_token(key, id, t[1], '$FAILED', '$F_ERROR_TYPE', 'AgentLost',
                 '$F_ERROR_MESSAGE', message, '$F_FINISHED_AT', now)
      redis.call('HDEL', key, '$F_AGENT')
      expire_final(key, ttl, t[9])
      return 'failed', attempt, t[7] or ''
    end
    attempt = attempt + 1
  end
  move_token(key, id, t[1], '$WAITING', '$F_ATTEMPT', attempt)
  redis.call('HDEL', key, '$F_AGENT', '$F_STARTED_AT')
  redis.call('LPUSH', p .. '$K_QUEUE' .. t[5], id)
  return 'requeued', t[5]
end

-- Accumulates give_back's answers: failed = flat {id, attempt, session, ...}, perw = weight -> n.
local function tally(acc, id, kind, a, b)
  if kind == 'failed' then
    acc.failed[#acc.failed + 1] = id
    acc.failed[#acc.failed + 1] = a
    acc.failed[#acc.failed + 1] = b
  elseif kind == 'requeued' then
    acc.perw[a] = (acc.perw[a] or 0) + 1
    acc.n = acc.n + 1
  end
end

local function new_tally() return {failed = {}, perw = {}, n = 0} end

-- Counters for a tally, and its reply: {failed flat, {weight, n, ...}}.
local function finish_tally(p, acc)
  local nfailed = #acc.failed / 3
  if acc.n > 0 then redis.call('HINCRBY', p .. '$K_COUNTS', 'requeued', acc.n) end
  if nfailed > 0 then
    redis.call('HINCRBY', p .. '$K_COUNTS', 'failed', nfailed)
    redis.call('HINCRBY', p .. '$K_COUNTS', 'lost', nfailed)
  end
  local perw = {}
  for w, n in pairs(acc.perw) do
    perw[#perw + 1] = w; perw[#perw + 1] = n
    redis.call('SADD', p .. '$K_QUEUES', w)
  end
  return {acc.failed, perw}
end
