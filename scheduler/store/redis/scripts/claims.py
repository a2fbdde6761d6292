"""The claim and the outcome scripts (SPEC 3): every claim of one moment in one step, a noted
attempt, and the finish of a fire; CLAIM and FINISH write the ledger (ledger.LEDGER).

Every record a script reads may be malformed (SPEC 3, rule 8): see scripts/__init__.py.
"""

from .ledger import LEDGER

# All claims of one moment in one step. The lease check and every watermark advance happen
# atomically, so a replica that lost its lease can never claim, and no slot is claimed
# twice. Returns -1 when the lease is not ours, else per claim 0 (stale), 1 (claimed),
# 2 (paused: the watermark advances, nothing is recorded in flight), 3 (refused: the slot
# lies further ahead of the server's clock than claiming ahead allows, SPEC 3 rule 7) or 4
# (held: a redelivery of a fire its owner still runs, model.HELD).
# KEYS: leader slots inflight paused trigger triggered redrive
# ARGV: replica epoch now_ms claims job_prefix max_ahead_ms runs_prefix history_keep
# runs_at_prefix history_age_s; the claims one JSON array of [kind, job, slot, attempt,
# trigger_id, field, reason, policy] strings: one argument to encode instead of eight per
# claim, which matters to the client when a thousand jobs are due at once. The field is named
# by the client (model.FireId), the one place a fire's name is spelled. An `expire` writes the
# job's hash, and an expiry, a pause or a skip its ledger entry (see LEDGER), named from the
# prefixes as FINISH does (same {namespace} hash tag, so one Cluster slot).
CLAIM = LEDGER + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
-- A script stopped by an error keeps what it wrote before it: a key of the wrong type found
-- half-way would leave a watermark advanced with no fire recorded. Check them all first; the
-- client renames such keys aside and sends the claims again.
local want = {'hash', 'hash', 'set', 'list', 'hash'}
for i = 2, 6 do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= want[i - 1] then return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. t) end
end
if KEYS[7] then
  local t = redis.call('TYPE', KEYS[7])['ok']
  if t ~= 'none' and t ~= 'hash' then return redis.error_reply('WRONGTYPE ' .. KEYS[7] .. ' holds a ' .. t) end
end
local claims = cjson.decode(ARGV[4])
for _, c in ipairs(claims) do
  if c[1] == 'expire' then
    local t = redis.call('TYPE', ARGV[5] .. c[2])['ok']
    if t ~= 'none' and t ~= 'hash' then return redis.error_reply('WRONGTYPE ' .. ARGV[5] .. c[2] .. ' holds a ' .. t) end
  end
end
local epoch, now = ARGV[2], ARGV[3]
local keep = tonumber(ARGV[8]) or 0
local t = redis.call('TIME')
local server_ms = t[1] * 1000 + math.floor(t[2] / 1000)
local latest = server_ms + tonumber(ARGV[6])
local oldest = tonumber(ARGV[10]) and math.floor(now / 1000 - tonumber(ARGV[10]))
-- A slot passed over, in the ledger: outcome skipped (overlap, paused) or dropped (missed).
local function passed(c, outcome, reason, policy)
  if keep <= 0 then return end
  ledger(ARGV[7] .. c[2], ARGV[9] .. c[2], c[3], c[3], '{"slot":' .. c[3] ..
    ',"trigger":null,"attempts":0,"outcome":"' .. outcome .. '","reason":' .. cjson.encode(reason) ..
    ',"policy":' .. (policy == '' and 'null' or cjson.encode(policy)) .. ',"finished_at":' ..
    string.format('%.3f', now / 1000) .. ',"fencing_token":' .. epoch .. '}', keep, oldest)
end
-- 1 when the fire is in flight under this epoch: claimed by this leadership already.
local function ours(field)
  local cur = redis.call('HGET', KEYS[3], field)
  if not cur then return 0 end
  local fine, rec = pcall(cjson.decode, cur)
  if fine and type(rec) == 'table' and tostring(rec['epoch']) == epoch then return 1 end
  return 0
end
local out = {}
for _, c in ipairs(claims) do
  local kind, job, slot, attempt, tid, field = c[1], c[2], c[3], c[4], c[5], c[6]
  local record = '{"epoch":' .. epoch .. ',"attempt":' .. attempt .. ',"slot":' .. slot ..
    ',"claimed_at":' .. now .. '}'
  local ok = 0
  if kind ~= 'redeliver' and kind ~= 'trigger' and tonumber(slot) * 1000 > latest then
    ok = 3
  elseif kind == 'redeliver' then
    local cur = redis.call('HGET', KEYS[3], field)
    if cur then
      -- 4 (held): a replica that handed the lease over still runs it until its deadline
      -- (handover.py); an unreadable record holds nothing.
      local fine, rec = pcall(cjson.decode, cur)
      local untl = fine and type(rec) == 'table' and tonumber(rec['until'])
      if untl and untl > server_ms and rec['owner'] ~= ARGV[1] then
        ok = 4
      else
        redis.call('HSET', KEYS[3], field, record)
        ok = 1
      end
    end
  elseif kind == 'init' then
    ok = redis.call('HSETNX', KEYS[2], job, slot)
    redis.call('HSETNX', ARGV[5] .. job, 'first_seen_at', now / 1000)
  elseif kind == 'expire' then
    -- Only at a job's first sighting (no watermark yet), as INIT; its pause does not matter,
    -- since nothing fires. The outcome goes where FINISH puts one, without a failure.
    ok = redis.call('HSETNX', KEYS[2], job, slot)
    if ok == 1 then
      local at = string.format('%.3f', now / 1000)
      redis.call('HSET', ARGV[5] .. job, 'status', 'expired', 'slot', slot, 'finished_at', at,
        'duration_ms', 0, 'http_status', '', 'error', c[7], 'attempts', 0, 'epoch', epoch, 'excerpt', '')
      if keep > 0 then
        local entry = '{"slot":' .. slot .. ',"trigger":null,"attempts":0,"outcome":"expired","http_status":null,' ..
          '"duration_ms":0,"lateness_ms":null,"finished_at":' .. at .. ',"fencing_token":' .. epoch ..
          ',"error":' .. cjson.encode(c[7]) .. ',"excerpt":null}'
        ledger(ARGV[7] .. job, ARGV[9] .. job, slot, slot, entry, keep, oldest)
      end
    end
  elseif kind == 'trigger' then
    -- A request id fires once, whichever leader takes it and however often it was sent.
    for _, raw in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
      local ok, rec = pcall(cjson.decode, raw)
      if ok and type(rec) == 'table' and tostring(rec['id']) == tid then redis.call('LREM', KEYS[5], 0, raw) end
    end
    if redis.call('HSETNX', KEYS[6], tid, now) == 1 then
      redis.call('HSET', KEYS[3], field, record)
      ok = 1
    end
  elseif kind == 'redrive' then
    -- A named slot sent again (redrive, backfill), taken from its queue once, in flight under
    -- the slot's own field; the watermark stays. A slot the schedule has yet to claim is left
    -- to it. A request already taken answers for a claim sent again after a lost reply.
    if redis.call('HDEL', KEYS[7], field) == 0 then
      ok = ours(field)
    else
      local mark = tonumber(redis.call('HGET', KEYS[2], job))
      if mark and tonumber(slot) <= mark and redis.call('HSETNX', KEYS[3], field, record) == 1 then ok = 1 end
    end
  else
    local mark = tonumber(redis.call('HGET', KEYS[2], job))
    if not mark or tonumber(slot) > mark then
      redis.call('HSET', KEYS[2], job, slot)
      if redis.call('SISMEMBER', KEYS[4], job) == 1 then
        ok = 2
        passed(c, 'skipped', 'paused', '')
      else
        if kind == 'fire' then
          redis.call('HSET', KEYS[3], field, record)
        else
          passed(c, c[7] == 'missed' and 'dropped' or 'skipped', c[7], c[8] or '')
        end
        ok = 1
      end
    elseif kind == 'fire' then
      -- A retry of a claim whose reply was lost: it is ours if recorded under our epoch. Not
      -- only the job's newest slot (its watermark): a batch that made up several slots of a
      -- job advanced the mark past the older ones, and they are ours too.
      ok = ours(field)
    elseif kind == 'skip' and tonumber(slot) == mark then
      ok = 1  -- a skip sent again: only the leader claims, so the mark is its own
    end
  end
  out[#out + 1] = ok
end
return out
"""

# Only while the fire is still recorded under this epoch: a newer leader's redelivery owns it.
NOTE_ATTEMPT = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local fine, rec = pcall(cjson.decode, cur)
if not fine or type(rec) ~= 'table' or tostring(rec['epoch']) ~= ARGV[2] then return 0 end
rec['attempt'] = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return 1
"""

# Outcomes of many fires in one call, each fenced by the epoch that ran it: the in-flight
# record is dropped only while it is still that epoch's (a newer leader may have taken it
# over on redelivery), and the job's last outcome and history are written only then, or
# when no record is left and no newer epoch has written the job's outcome.
# KEYS[1] is the in-flight hash; ARGV[1] the prefix of the job hashes, ARGV[2] a JSON array
# of [job, field, status, slot, finished_at, duration_ms, http_status, error, attempts,
# epoch, trigger_id, excerpt, lateness_ms] strings ('' for none), ARGV[3] and ARGV[5] the
# prefixes of the ledger's hashes and sorted sets (see LEDGER), ARGV[4] how many entries a job
# keeps (0: none), ARGV[6] the oldest slot kept (Unix seconds: now less SCHEDULER_HISTORY_AGE).
# The job keys are named from the prefixes rather
# than listed in KEYS (thousands of keys per call otherwise); they carry the same
# {namespace} hash tag, so the script still touches a single Cluster slot. Returns each
# job's failure streak after its outcome.
FINISH = LEDGER + """
local function text(v) if v == '' then return 'null' end return cjson.encode(v) end
local function number(v) if v == '' then return 'null' end return v end
local keep = tonumber(ARGV[4])
local out = {}
local outcomes = cjson.decode(ARGV[2])
-- As in CLAIM: no write before every key is known to be of its type (an error half-way
-- would count a failure twice when the batch is sent again).
for _, o in ipairs(outcomes) do
  local t = redis.call('TYPE', ARGV[1] .. o[1])['ok']
  if t ~= 'none' and t ~= 'hash' then return redis.error_reply('WRONGTYPE ' .. ARGV[1] .. o[1] .. ' holds a ' .. t) end
end
local oldest = tonumber(ARGV[6])
for _, o in ipairs(outcomes) do
  local key, field, status, slot, at, epoch = ARGV[1] .. o[1], o[2], o[3], o[4], o[5], o[10]
  local cur = redis.call('HGET', KEYS[1], field)
  local ours = false
  if cur then
    local fine, rec = pcall(cjson.decode, cur)
    ours = fine and type(rec) == 'table' and tostring(rec['epoch']) == epoch
    if ours then redis.call('HDEL', KEYS[1], field) end
  else
    local last = tonumber(redis.call('HGET', key, 'epoch'))
    ours = not last or last <= tonumber(epoch)
  end
  local fails = tonumber(redis.call('HGET', key, 'consecutive_failures')) or 0
  if ours then
    if status == 'ok' then
      fails = 0
      redis.call('HSET', key, 'last_success_at', at)
    else
      fails = fails + 1
    end
    redis.call('HSET', key, 'status', status, 'slot', slot, 'finished_at', at,
      'duration_ms', o[6], 'http_status', o[7], 'error', o[8], 'attempts', o[9],
      'epoch', epoch, 'consecutive_failures', fails, 'excerpt', o[12])
    if keep > 0 then
      -- The entry is built here from the fields already sent, not as JSON by the client: at
      -- a thousand fires a second that work is better off the leader's event loop.
      local entry = '{"slot":' .. slot .. ',"trigger":' .. text(o[11]) .. ',"attempts":' .. o[9] ..
        ',"outcome":' .. cjson.encode(status) .. ',"http_status":' .. number(o[7]) ..
        ',"duration_ms":' .. o[6] .. ',"lateness_ms":' .. number(o[13]) .. ',"finished_at":' .. at ..
        ',"fencing_token":' .. epoch .. ',"error":' .. text(o[8]) .. ',"excerpt":' .. text(o[12]) .. '}'
      local id = slot
      if o[11] ~= '' then id = 'manual:' .. o[11] end
      ledger(ARGV[3] .. o[1], ARGV[5] .. o[1], id, slot, entry, keep, oldest)
    end
  end
  out[#out + 1] = fails
end
return out
"""
