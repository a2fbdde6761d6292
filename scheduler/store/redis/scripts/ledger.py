"""The ledger's part of the Redis store's scripts (SPEC 8): the Lua function CLAIM and FINISH
share to write a job's entry and trim its oldest end, and how many acquisitions the lease's
log keeps. claims.py prepends LEDGER to the two scripts that write the ledger."""

# How many acquisitions the `leaderships` list keeps (explain reads it, SPEC 8).
LEADERSHIPS_KEPT = 100

# The ledger of one job (SPEC 8): a hash `runs:<job>` of entry id (the slot in Unix seconds,
# or `manual:<request id>`) -> its JSON, and a sorted set `runs_at:<job>` of the same ids by
# slot. Writing an id again replaces its entry. Retention is trimmed at the oldest end only:
# past `keep` entries, ZPOPMIN; slots older than `oldest` (nil: no age bound), a few at a time
# (O(log n) each), but never the entry just written: an `at` job's expiry, or an old slot sent
# again, stays until the job's next write.
# A ledger key of the wrong type (a person's edit) loses that entry rather than failing the
# claim or the outcome around it: the whole write runs under pcall.
LEDGER = """
local function ledger(h, z, id, slot, entry, keep, oldest)
  pcall(function()
    -- The order first: if it cannot be written (a key of the wrong type, or a user whose ACL
    -- predates the ledger), no entry is left outside the trim.
    redis.call('ZADD', z, slot, id)
    redis.call('HSET', h, id, entry)
    local over = redis.call('ZCARD', z) - keep
    local popped = nil  -- the newest slot popped: every entry left is at least as new
    if over > 0 then
      for i, v in ipairs(redis.call('ZPOPMIN', z, over)) do
        if i % 2 == 1 then redis.call('HDEL', h, v) else popped = tonumber(v) end
      end
    end
    if not oldest or (popped and popped >= oldest) then return end
    for _, v in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. oldest, 'LIMIT', 0, 4)) do
      if v ~= id then
        redis.call('ZREM', z, v)
        redis.call('HDEL', h, v)
      end
    end
  end)
end
"""
