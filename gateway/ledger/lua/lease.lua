-- lease.lua: the gateway serving a shard holds this lease, renews it, and holds the shard's
-- fencing epoch.
--
-- Keys: KEYS[1] the lease <p>gateway: a string, the holder's record (msgpack map with at
-- least its id: unique per gateway process, and host, pid, start time), with a TTL.
-- KEYS[2] the epoch <p>epoch: "<n>:<id>", no TTL: which gateway may write to the shard.
-- KEYS[3] <p>wanted: the record of the shard's own gateway (started with --shard) waiting
-- for a gateway that adopted the shard to give it back, with a TTL.
-- Every other script runs only if the epoch it is given is this one (lib.lua), so a gateway
-- that was paused past its lease, while another took the shard, writes nothing when it
-- wakes: the lease alone would not stop it (it writes before it next renews).
-- ARGV[1] mode, ARGV[2] this gateway's record, ARGV[3] ttl milliseconds, ARGV[4] for
-- takeover: the record of the holder it replaces. Modes:
--   home     the shard's own gateway starts: take the lease if it is free or ours; if not,
--            say so in <p>wanted (a gateway that adopted the shard gives it back);
--   acquire  adopt the shard of a gateway that is gone: take the lease if it is free and
--            its own gateway does not want it back (an adopter that just gave it back must
--            not take it again before its own gateway does);
--   takeover take it from exactly the given holder (a gateway on this host whose process
--            is gone);
--   renew    keep it if it is free or ours and the epoch still names us (after a Redis
--            restart that lost both keys, the holder takes them back with a new n); a lapsed
--            lease whose epoch another gateway took is lost;
--   renew-adopted  the same for an adopted shard, which is lost once its own gateway wants it;
--   release  drop the lease if ours; the epoch stays (the next holder raises it).
-- Taking the lease raises the epoch to n + 1 with our id unless it already names us.
-- Returns {1, epoch} on success, {0, the current holder's record or ''} when it is not ours.
local lkey, ekey, wkey = KEYS[1], KEYS[2], KEYS[3]
local mode, record, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local id = cmsgpack.unpack(record).id
local current = redis.call('GET', lkey)
if mode == 'release' then
  if current == record then redis.call('DEL', lkey) end
  return {1, ''}
end
local mine = (not current) or current == record or (mode == 'takeover' and current == ARGV[4])
if not mine then
  if mode == 'home' then redis.call('SET', wkey, record, 'PX', 2 * ttl) end
  return {0, current}
end
local wanted = redis.call('GET', wkey)
if (mode == 'renew-adopted' or mode == 'acquire') and wanted and wanted ~= record then
  return {0, wanted}
end
if wanted == record then redis.call('DEL', wkey) end
local epoch = redis.call('GET', ekey)
local n, holder = 0, nil
if epoch then n, holder = string.match(epoch, '^(%d+):(.*)$$') end
if holder ~= id then
  if (mode == 'renew' or mode == 'renew-adopted') and epoch then return {0, current or ''} end
  epoch = (tonumber(n) + 1) .. ':' .. id
  redis.call('SET', ekey, epoch)
end
redis.call('SET', lkey, record, 'PX', ttl)
return {1, epoch}
