-- lease.lua: the gateway serving a shard holds this lease, renews it, and holds the shard's
-- fencing epoch.
--
-- Keys: KEYS[1] the lease <p>gateway: a string, the holder's record (msgpack map with at least
-- its id: unique per gateway process, and host, pid, start time), with a TTL.
-- KEYS[2] the epoch <p>epoch: "<n>:<id>", no TTL: which gateway may write to the shard.
-- Every other script runs only if the epoch it is given is this one (lib.lua), so a gateway
-- that was paused past its lease, while another took the shard, writes nothing when it
-- wakes: the lease alone would not stop it (it writes before it next renews).
-- ARGV[1] mode 'acquire' | 'renew' | 'release' | 'takeover', ARGV[2] this gateway's record,
-- ARGV[3] ttl milliseconds, ARGV[4] for takeover: the record of the holder it replaces.
-- acquire and takeover: take the lease if it is free or ours (takeover: or exactly the given
-- holder's, a gateway on this host whose process is gone); the epoch becomes n + 1 with our
-- id unless it already names us. renew: keep it if it is free or ours and the epoch still
-- names us (after a Redis restart that lost both keys, the holder takes them back with a new
-- n); a lapsed lease whose epoch another gateway took is lost. release: drop the lease if
-- ours; the epoch stays (the next holder raises it).
-- Returns {1, epoch} on success, {0, the current holder's record or ''} when it is not ours.
local lkey, ekey = KEYS[1], KEYS[2]
local mode, record, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local id = cmsgpack.unpack(record).id
local current = redis.call('GET', lkey)
if mode == 'release' then
  if current == record then redis.call('DEL', lkey) end
  return {1, ''}
end
local mine = (not current) or current == record or (mode == 'takeover' and current == ARGV[4])
if not mine then return {0, current} end
local epoch = redis.call('GET', ekey)
local n, holder = 0, nil
if epoch then n, holder = string.match(epoch, '^(%d+):(.*)$$') end
if holder ~= id then
  if mode == 'renew' and epoch then return {0, current or ''} end
  epoch = (tonumber(n) + 1) .. ':' .. id
  redis.call('SET', ekey, epoch)
end
redis.call('SET', lkey, record, 'PX', ttl)
return {1, epoch}
