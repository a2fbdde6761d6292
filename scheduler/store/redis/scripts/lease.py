"""The lease's scripts (SPEC 3): acquire with the fencing epoch, renew, release, and the
state format the acquisition checks.

Every record a script reads may be malformed (SPEC 3, rule 8): see scripts/__init__.py.
"""

from .ledger import LEADERSHIPS_KEPT

# The state format this version writes and reads. Format 1 is the original layout (no
# `meta` key); format 2 adds `meta`, job records' `epoch` and `first_seen_at`, history
# lists and the quarantine hash. Every key and field of format 1 keeps its meaning, so a
# format-1 reader still reads what format 2 writes.
FORMAT = 2

# Compare the server's clock with ours, check the state's format, then SET NX PX, and on
# success INCR the fencing epoch in the same atomic step, so an epoch is never handed to
# two holders. A replica that still holds its own key (it lost track of it, for instance
# after a timeout on a renewal that did succeed) takes a new epoch too.
#
# A missing epoch (a new namespace, or a Redis that lost its data) starts from the server's
# clock in milliseconds rather than from 0, so fencing tokens keep growing even across a
# loss of state: a target that refuses tokens lower than one it has seen keeps working.
# Each acquisition is logged in the capped `leaderships` list (SPEC 8, for explain): the epoch,
# the replica, when, and who led before and when it was last seen alive (its last renewal).
# KEYS: leader epoch meta leaderships  ARGV: replica ttl_ms client_ms max_skew_ms format writer
# Returns {1, epoch, skew_ms} acquired, {0, 0, skew_ms} held by another,
# {2, 0, skew_ms} clock off by more than the limit, {3, format, skew_ms} newer format.
ACQUIRE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local skew = tonumber(ARGV[3]) - now
if math.abs(skew) > tonumber(ARGV[4]) then return {2, 0, skew} end
local format = tonumber(redis.call('HGET', KEYS[3], 'format'))
if format and format > tonumber(ARGV[5]) then return {3, format, skew} end
local ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if not ok then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, 0, skew} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not format or format < tonumber(ARGV[5]) then redis.call('HSET', KEYS[3], 'format', ARGV[5]) end
redis.call('HSET', KEYS[3], 'writer', ARGV[6])
-- INCR takes only a whole number in its canonical form (no leading zero, no '-0', at most 18
-- digits so it cannot overflow): tonumber would also pass '0' followed by a NUL byte, or '00'.
local mark = redis.call('GET', KEYS[2]) or ''
if not (mark == '0' or (string.match(mark, '^%-?[1-9]%d*$') and #mark <= 18)) then
  redis.call('SET', KEYS[2], now)
end
local epoch = redis.call('INCR', KEYS[2])
if KEYS[4] then
  local seen = redis.call('HMGET', KEYS[3], 'alive_by', 'alive_at')
  redis.call('LPUSH', KEYS[4], cjson.encode({epoch = epoch, replica = ARGV[1], acquired_at = now,
    previous = seen[1] or cjson.null, previous_seen_at = tonumber(seen[2]) or cjson.null}))
  redis.call('LTRIM', KEYS[4], 0, LEADERSHIPS_KEPT - 1)
  redis.call('HSET', KEYS[3], 'alive_by', ARGV[1], 'alive_at', now)
end
return {1, epoch, skew}
""".replace("LEADERSHIPS_KEPT", str(LEADERSHIPS_KEPT))

# Compare-and-pexpire: never extend a lease another replica holds (redbeat #127). A holder
# whose clock has drifted past the limit gives the lease up at once and tells the standbys.
# A renewal notes the holder alive in `meta` (alive_by, alive_at): the next acquisition logs it.
# KEYS: leader released meta  ARGV: replica ttl_ms client_ms max_skew_ms
# Returns {1, skew_ms} renewed, {0, skew_ms} not ours, {2, skew_ms} released for skew.
RENEW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local skew = tonumber(ARGV[3]) - now
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, skew} end
if math.abs(skew) > tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[1])
  -- pcall: the lease is given up whether or not this user may publish (the standbys then
  -- find it free at their next poll); an error here would leave the DEL done and unsaid.
  redis.pcall('PUBLISH', KEYS[2], ARGV[1])
  return {2, skew}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if KEYS[3] then redis.call('HSET', KEYS[3], 'alive_by', ARGV[1], 'alive_at', now) end
return {1, skew}
"""

# Compare-and-delete. The client then tells the standbys (a PUBLISH of its own, so that a
# user who may not publish still releases, and the two facts are reported apart).
# KEYS: leader  ARGV: replica
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
