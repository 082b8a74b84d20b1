-- lease.lua: the one gateway serving a prefix holds this lease and renews it.
--
-- Keys: ARGV[1], the lease key <p>gateway: a string, the holder's record (msgpack of its id,
-- host, pid and start time: unique per gateway process), with a TTL.
-- ARGV[2] mode 'acquire' | 'renew' | 'release' | 'takeover', ARGV[3] this gateway's record,
-- ARGV[4] ttl milliseconds, ARGV[5] for takeover: the record of the holder it replaces.
-- acquire and renew: take it if it is free or ours (renew also takes back a lease that lapsed,
-- e.g. after a Redis restart without it). release: drop it if ours. takeover: replace exactly
-- the given holder (a gateway on this host whose process is gone).
-- Returns {1, ""} on success, {0, the current holder's record} when another gateway holds it.
local key, mode, record, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local current = redis.call('GET', key)
if mode == 'release' then
  if current == record then redis.call('DEL', key) end
  return {1, ''}
end
local mine = (not current) or current == record or (mode == 'takeover' and current == ARGV[5])
if not mine then return {0, current} end
redis.call('SET', key, record, 'PX', ttl)
return {1, ''}
