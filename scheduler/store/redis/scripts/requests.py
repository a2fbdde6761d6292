"""The request scripts: a manual fire queued once per job and id (SPEC 3).

Every record a script reads may be malformed (SPEC 3, rule 8): see scripts/__init__.py.
"""

# Queue a manual fire unless the same id was already taken, or one for the job is still
# queued or in flight (then the caller is told which one it joins). The client then wakes
# the leader with a PUBLISH of its own: a notice that cannot be sent never undoes the queueing
# nor hides it behind an error. ARGV[4] is unused (older versions published to it here).
# KEYS: trigger inflight triggered  ARGV: job id raw_request wake_channel
REQUEST_TRIGGER = """
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then
  return cjson.encode({id = ARGV[2]})
end
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' and rec['job'] == ARGV[1] then return raw end
end
local prefix = ARGV[1] .. '@manual:'
for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
  if string.sub(field, 1, #prefix) == prefix then
    local ok, rec = pcall(cjson.decode, redis.call('HGET', KEYS[2], field))
    if not ok or type(rec) ~= 'table' then rec = {} end
    rec['id'] = string.sub(field, #prefix + 1)
    return cjson.encode(rec)
  end
end
redis.call('RPUSH', KEYS[1], ARGV[3])
return false
"""
