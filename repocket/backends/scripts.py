"""The server-side scripts of the redis backend (Lua, run with EVALSHA).

Every write of a record is one of these scripts, so it is one command and one
round trip, and it is atomic: redis runs a script without interleaving other
commands.  Each script checks everything it needs (create-only, the expected
fields of a conditional save, unique claims) *before* its first write, so a
refused write leaves nothing behind.

A record's index entries and claims are remembered in its shard's ``terms``
hash (record id -> text), so that a save removes exactly the entries the
record no longer has.  The text is JSON::

    [[<entry name>, <score>, <entry name>, <score>, ...], [<field>, <term>, ...]]

where ``<score>`` is the sorted-set score as text, or ``""`` for an entry
that is a plain set.  Scores travel as text so that no float is ever
formatted by Lua.

Key arguments name the record's key, its shard's keys and the collection's
unique-claims hash; index keys are the shard's index prefix followed by an
entry name, and stream keys the record key followed by ``:field:<name>``:
all of them carry the shard's hash tag, so a script touches one cluster slot
(except the unique hash, which is per collection).

The unique-claims key is optional: a caller that cannot pass it (on a Redis
Cluster it is in another slot than the record) leaves it out, takes the
claims itself before running the script and releases the ones the script
reports dropped afterwards (see docs/cluster.rst).
"""

from __future__ import annotations

__all__ = [
    "COMMON",
    "SAVE",
    "SAVE_MANY",
    "DELETE",
    "APPEND",
    "SWAP",
    "EXPIRE",
    "PRUNE",
    "READ",
    "CREATE_MANY",
]

# Helpers shared by the scripts below (prepended to each).
COMMON = r"""
-- Damaged remembered entries must not make a record impossible to update or
-- delete: they are read as none (the entries they named are then left
-- behind, and check() reports the record until reindex() rebuilds it).
local function decode_terms(text)
  if not text or text == '' then return {}, {} end
  local ok, terms = pcall(cjson.decode, text)
  if not ok or type(terms) ~= 'table' then return {}, {} end
  local entries, claims = terms[1], terms[2]
  if type(entries) ~= 'table' then entries = {} end
  if type(claims) ~= 'table' then claims = {} end
  for j = 1, #entries do
    if type(entries[j]) ~= 'string' then return {}, {} end
  end
  for j = 1, #claims do
    if type(claims[j]) ~= 'string' then return {}, {} end
  end
  if #entries % 2 == 1 or #claims % 2 == 1 then return {}, {} end
  return entries, claims
end

local function as_map(flat)
  local map = {}
  for j = 1, #flat, 2 do map[flat[j]] = flat[j + 1] end
  return map
end

local function same_fields(key, at, n)
  local stored = redis.call('HGETALL', key)
  if #stored ~= 2 * n then return false end
  local want = {}
  for j = 0, n - 1 do want[ARGV[at + 2 * j]] = ARGV[at + 2 * j + 1] end
  for j = 1, #stored, 2 do
    if want[stored[j]] ~= stored[j + 1] then return false end
  end
  return true
end

local function first_held_claim(unique_key, claims, id)
  for j = 1, #claims, 2 do
    local holder = redis.call('HGET', unique_key, claims[j] .. ':' .. claims[j + 1])
    if holder and holder ~= id then return {'unique', claims[j], claims[j + 1], holder} end
  end
  return nil
end

local function remove_entry(prefix, name, score, id)
  if score == '' then
    redis.call('SREM', prefix .. name, id)
  else
    redis.call('ZREM', prefix .. name, id)
  end
end

local function add_entry(prefix, name, score, id)
  if score == '' then
    redis.call('SADD', prefix .. name, id)
  else
    redis.call('ZADD', prefix .. name, score, id)
  end
end

local function release_claims(unique_key, claims, keep, id)
  for j = 1, #claims, 2 do
    local claim = claims[j] .. ':' .. claims[j + 1]
    if not keep[claim] and redis.call('HGET', unique_key, claim) == id then
      redis.call('HDEL', unique_key, claim)
    end
  end
end

-- Every key a script writes is checked to hold its kind of value (or none)
-- before the first write: redis does not undo a script's earlier writes
-- when a later command fails, so a write must never fail half-way.
local function wrong_type(checks, checked)
  for j = 1, #checks, 2 do
    local key, wanted = checks[j], checks[j + 1]
    if not checked or checked[key] ~= wanted then
      local found = redis.call('TYPE', key)['ok']
      if found ~= 'none' and found ~= wanted then
        return {'wrongtype', key, found, wanted}
      end
    end
  end
  if checked then
    -- written below as what they were checked for: they stay so
    for j = 1, #checks, 2 do checked[checks[j]] = checks[j + 1] end
  end
  return nil
end

-- A key a script writes without declaring it (a stream, the expiry index)
-- is read before the first write: on a Redis Cluster whose slot is moving,
-- a key already moved fails the script there, with nothing written, and
-- the caller runs it again once the slot has moved.
local function reach(key)
  redis.call('EXISTS', key)
end

local function entry_kind(score)
  if score == '' then return 'set' end
  return 'zset'
end

-- The claims a record had and no longer has, flat: a caller keeping the
-- claims elsewhere releases them once the record's write is done.
local function dropped_claims(old, keep)
  local flat = {}
  for j = 1, #old, 2 do
    if not keep[old[j] .. ':' .. old[j + 1]] then
      flat[#flat + 1] = old[j]
      flat[#flat + 1] = old[j + 1]
    end
  end
  return flat
end

local function claim_set(claims)
  local set = {}
  for j = 1, #claims, 2 do set[claims[j] .. ':' .. claims[j + 1]] = true end
  return set
end

-- A shard's expiry index (expiring ids, scored by the ms they expire at),
-- named as its id index is: repocket::ids:... -> repocket::expiry:...
local function expiry_of(ids_key)
  return 'repocket::expiry:' .. string.sub(ids_key, 15)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Remove what the shard's expired records left in its index data (redis
-- removes their keys on its own, at the same millisecond).  Every query
-- and write of the shard runs this first, so nothing it reads or checks
-- includes an expired record.  Removals of damaged entries are skipped
-- (redis.pcall): check() reports what is left.  Returns how many records
-- were removed and, without a unique key, their claims (for the caller).
local function prune(ids_key, terms_key, unique_key, prefix, record_prefix)
  local expiry_key = expiry_of(ids_key)
  if redis.call('TYPE', expiry_key)['ok'] ~= 'zset' then return 0, {} end
  -- due: expiring at or before now.  The record's hash is deleted here too
  -- (redis would remove it at most a millisecond later), so that nothing
  -- after this in the script sees a record whose index data is gone; its
  -- streams expire on their own, at the same instant
  local gone = redis.call('ZRANGEBYSCORE', expiry_key, '-inf', now_ms())
  local dropped = {}
  for _, id in ipairs(gone) do
    local entries, claims = decode_terms(redis.call('HGET', terms_key, id))
    for j = 1, #entries, 2 do
      if entries[j + 1] == '' then
        redis.pcall('SREM', prefix .. entries[j], id)
      else
        redis.pcall('ZREM', prefix .. entries[j], id)
      end
    end
    if unique_key then
      for j = 1, #claims, 2 do
        local claim = claims[j] .. ':' .. claims[j + 1]
        if redis.pcall('HGET', unique_key, claim) == id then
          redis.pcall('HDEL', unique_key, claim)
        end
      end
    else
      for j = 1, #claims do dropped[#dropped + 1] = claims[j] end
    end
    redis.pcall('HDEL', terms_key, id)
    redis.pcall('ZREM', ids_key, id)
    redis.call('ZREM', expiry_key, id)
    redis.pcall('DEL', record_prefix .. id)
  end
  return #gone, dropped
end

-- The expiry time (ms) of a key, read before anything is written; -1 when
-- it has none (PTTL is in every redis version; PEXPIRETIME only from 7.0).
local function expires_at(key)
  local left = redis.call('PTTL', key)
  if left < 0 then return -1 end
  return now_ms() + left
end
"""

# KEYS: record, shard ids, shard terms[, collection unique]
# Returns {'ok'} ({'ok', field, term, ...} without the unique key: the
# claims the record dropped), {'same'} (a create-only write found itself already
# applied), {'exists'}, {'conflict'}, {'unique', field, term, holder} or
# {'wrongtype', key, found, wanted}.
# ARGV: id, mode ('u' upsert, 'n' create-only, 'x' expected fields),
#       index prefix, new terms text ('' for none),
#       nfields, field/text pairs..., nexpected, pairs..., nstreams, name/content pairs...
SAVE_ONE = r"""
-- One record's save (see SAVE for the arguments), its ARGV starting at a;
-- returns the reply and where the next record's arguments start.  checked
-- remembers the keys whose type was checked by this script run.
local function save_one(rkey, ids_key, terms_key, unique_key, a, checked)
  local id, mode, prefix, terms_text = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local nf = tonumber(ARGV[a + 4])
  local fields_at = a + 5
  local ne_at = fields_at + 2 * nf
  local ne = tonumber(ARGV[ne_at])
  local expected_at = ne_at + 1
  local ns_at = expected_at + 2 * ne
  local ns = tonumber(ARGV[ns_at])
  local ttl_at = ns_at + 1 + 2 * ns
  local ttl = ARGV[ttl_at]
  local nall = tonumber(ARGV[ttl_at + 1])
  local next_at = ttl_at + 2 + nall
  local expiry_key = expiry_of(ids_key)

  local existed = nil
  if mode == 'n' then
    existed = redis.call('EXISTS', rkey) == 1
    if existed then
      if same_fields(rkey, fields_at, nf) then return {'same'}, next_at end
      return {'exists'}, next_at
    end
  elseif mode == 'x' then
    if not same_fields(rkey, expected_at, ne) or ne == 0 then return {'conflict'}, next_at end
  end

  local new_entries, new_claims = decode_terms(terms_text)
  -- without the unique key, the caller claims and releases (see above)
  local held = unique_key and first_held_claim(unique_key, new_claims, id)
  if held then return held, next_at end
  local old_entries, old_claims = decode_terms(redis.call('HGET', terms_key, id))

  local old_map, new_map = as_map(old_entries), as_map(new_entries)
  local removed, added = {}, {}
  local checks = {ids_key, 'zset'}
  if nf > 0 and not (mode == 'n') then
    checks[#checks + 1] = rkey
    checks[#checks + 1] = 'hash'
  end
  if unique_key and (#old_claims > 0 or #new_claims > 0) then
    checks[#checks + 1] = unique_key
    checks[#checks + 1] = 'hash'
  end
  checks[#checks + 1] = expiry_key
  checks[#checks + 1] = 'zset'
  for name, score in pairs(old_map) do
    if new_map[name] == nil then
      removed[#removed + 1] = name
      checks[#checks + 1] = prefix .. name
      checks[#checks + 1] = entry_kind(score)
    end
  end
  for name, score in pairs(new_map) do
    if old_map[name] ~= score then
      added[#added + 1] = name
      checks[#checks + 1] = prefix .. name
      checks[#checks + 1] = entry_kind(score)
    end
  end
  local wrong = wrong_type(checks, checked)
  if wrong then return wrong, next_at end
  for j = 0, ns - 1 do reach(rkey .. ':field:' .. ARGV[ns_at + 1 + 2 * j]) end
  for j = 1, nall do reach(rkey .. ':field:' .. ARGV[ttl_at + 1 + j]) end

  -- checked: from here on nothing can fail
  if existed == nil then existed = redis.call('EXISTS', rkey) == 1 end
  local kept_at = -1
  if ttl == '' and existed then kept_at = expires_at(rkey) end
  if nf > 0 then
    redis.call('HSET', rkey, unpack(ARGV, fields_at, fields_at + 2 * nf - 1))
  end
  for j = 0, ns - 1 do
    local name, content = ARGV[ns_at + 1 + 2 * j], ARGV[ns_at + 2 + 2 * j]
    if content == '' then
      redis.call('DEL', rkey .. ':field:' .. name)
    else
      redis.call('SET', rkey .. ':field:' .. name, content)
    end
  end
  if ttl ~= '' then
    -- the record and all its streams expire together
    local at = now_ms() + tonumber(ttl)
    redis.call('PEXPIREAT', rkey, at)
    for j = 1, nall do
      redis.call('PEXPIREAT', rkey .. ':field:' .. ARGV[ttl_at + 1 + j], at)
    end
    redis.call('ZADD', expiry_key, at, id)
  elseif existed then
    -- the record keeps its expiry: a stream written now (SET clears a
    -- key's expiry) takes it again, and the expiry index holds it (an
    -- index rebuilt by reindex() gets it back this way)
    if kept_at > 0 then
      for j = 0, ns - 1 do
        redis.call('PEXPIREAT', rkey .. ':field:' .. ARGV[ns_at + 1 + 2 * j], kept_at)
      end
      redis.call('ZADD', expiry_key, kept_at, id)
    end
  elseif nf > 0 then
    -- a new record does not expire (the expiry index may remember the id
    -- of a record deleted by other means); whether the index exists is
    -- asked once per script
    if checked['@expiry'] == nil then
      checked['@expiry'] = redis.call('EXISTS', expiry_key) == 1
    end
    if checked['@expiry'] then redis.call('ZREM', expiry_key, id) end
  end
  redis.call('ZADD', ids_key, 0, id)
  for j = 1, #removed do remove_entry(prefix, removed[j], old_map[removed[j]], id) end
  for j = 1, #added do add_entry(prefix, added[j], new_map[added[j]], id) end
  if unique_key then
    release_claims(unique_key, old_claims, claim_set(new_claims), id)
    for j = 1, #new_claims, 2 do
      redis.call('HSET', unique_key, new_claims[j] .. ':' .. new_claims[j + 1], id)
    end
  end
  if terms_text == '' then
    redis.call('HDEL', terms_key, id)
  else
    redis.call('HSET', terms_key, id, terms_text)
  end
  if not unique_key then
    return {'ok', unpack(dropped_claims(old_claims, claim_set(new_claims)))}, next_at
  end
  return {'ok'}, next_at
end
"""

SAVE = (
    COMMON
    + SAVE_ONE
    + r"""
prune(KEYS[2], KEYS[3], KEYS[4], ARGV[3], string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1]))
local reply = save_one(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 1, {})
return reply
"""
)

# KEYS: shard ids, shard terms, collection unique ('' when the caller keeps
# claims elsewhere), then the record keys, one per record
# ARGV: each record's SAVE arguments, one after the other
# Returns one SAVE reply per record.  Each record is saved or refused as SAVE
# would (atomically, after its own checks); the batch runs as one script, so
# the type checks of keys the records share are made once.
SAVE_MANY = (
    COMMON
    + SAVE_ONE
    + r"""
local unique_key = KEYS[3]
if unique_key == '' then unique_key = nil end
if #KEYS > 3 then
  prune(KEYS[1], KEYS[2], unique_key, ARGV[3], string.sub(KEYS[4], 1, #KEYS[4] - #ARGV[1]))
end
local checked, replies, a = {}, {}, 1
for i = 4, #KEYS do
  replies[#replies + 1], a = save_one(KEYS[i], KEYS[1], KEYS[2], unique_key, a, checked)
end
return replies
"""
)

# KEYS: record, shard ids, shard terms[, collection unique]
# ARGV: id, index prefix, stream field names...
# Returns the number of record keys removed (the hash, and streams holding
# data) ({removed, field, term, ...} without the unique key: the claims the
# record held), or {'wrongtype', key, found, wanted}.
DELETE = (
    COMMON
    + r"""
local id, prefix = ARGV[1], ARGV[2]
local entries, claims = decode_terms(redis.call('HGET', KEYS[3], id))
local checks = {KEYS[2], 'zset'}
if KEYS[4] and #claims > 0 then
  checks[#checks + 1] = KEYS[4]
  checks[#checks + 1] = 'hash'
end
for j = 1, #entries, 2 do
  checks[#checks + 1] = prefix .. entries[j]
  checks[#checks + 1] = entry_kind(entries[j + 1])
end
local wrong = wrong_type(checks)
if wrong then return wrong end
for j = 3, #ARGV do reach(KEYS[1] .. ':field:' .. ARGV[j]) end
local expiry_key = expiry_of(KEYS[2])
reach(expiry_key)

local removed = redis.call('DEL', KEYS[1])
for j = 3, #ARGV do
  removed = removed + redis.call('DEL', KEYS[1] .. ':field:' .. ARGV[j])
end
for j = 1, #entries, 2 do remove_entry(prefix, entries[j], entries[j + 1], id) end
redis.call('HDEL', KEYS[3], id)
redis.call('ZREM', KEYS[2], id)
if redis.call('TYPE', expiry_key)['ok'] == 'zset' then
  redis.call('ZREM', expiry_key, id)
end
if not KEYS[4] then return {removed, unpack(claims)} end
release_claims(KEYS[4], claims, {}, id)
return removed
"""
)

# KEYS: record, stream
# ARGV: data
# Returns the stream's new length, or -1 when the record does not exist.
APPEND = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[1] == '' then return redis.call('STRLEN', KEYS[2]) end
-- the stream expires with its record (read before writing: PTTL cannot fail)
local left = redis.call('PTTL', KEYS[1])
local length = redis.call('APPEND', KEYS[2], ARGV[1])
if left > 0 then redis.call('PEXPIRE', KEYS[2], left) end
return length
"""

# KEYS: record, shard terms[, collection unique] (without it, the caller
# claims and releases; see above)
# ARGV: id, index prefix, field, expected text ('' for an absent field), new text,
#       nremove, name/score pairs..., nadd, pairs..., nrelease, field/term pairs...,
#       nclaim, pairs...
# Returns {'ok'}, {'missing'}, {'stale', <current text>}, {'unique', ...} or
# {'wrongtype', key, found, wanted}.
SWAP = (
    COMMON
    + r"""
local id, prefix, field, expected, value = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local function pairs_at(at)
  local n = tonumber(ARGV[at])
  local flat = {}
  for j = 1, 2 * n do flat[j] = ARGV[at + j] end
  return flat, at + 1 + 2 * n
end
local remove, at = pairs_at(6)
local add, at2 = pairs_at(at)
local release, at3 = pairs_at(at2)
local claim = pairs_at(at3)

local current = redis.call('HGET', KEYS[1], field)
if not current then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
  current = ''
end
if current ~= expected then return {'stale', current} end
local held = KEYS[3] and first_held_claim(KEYS[3], claim, id)
if held then return held end
local entries, claims = decode_terms(redis.call('HGET', KEYS[2], id))
local map = as_map(entries)
local checks = {}
if KEYS[3] and (#release > 0 or #claim > 0) then
  checks[#checks + 1] = KEYS[3]
  checks[#checks + 1] = 'hash'
end
for j = 1, #remove, 2 do
  if map[remove[j]] ~= nil then
    checks[#checks + 1] = prefix .. remove[j]
    checks[#checks + 1] = entry_kind(map[remove[j]])
  end
end
for j = 1, #add, 2 do
  checks[#checks + 1] = prefix .. add[j]
  checks[#checks + 1] = entry_kind(add[j + 1])
end
local wrong = wrong_type(checks)
if wrong then return wrong end

redis.call('HSET', KEYS[1], field, value)
for j = 1, #remove, 2 do
  if map[remove[j]] ~= nil then remove_entry(prefix, remove[j], map[remove[j]], id) end
  map[remove[j]] = nil
end
for j = 1, #add, 2 do
  if map[add[j]] ~= add[j + 1] then add_entry(prefix, add[j], add[j + 1], id) end
  map[add[j]] = add[j + 1]
end
if KEYS[3] then release_claims(KEYS[3], release, claim_set(claim), id) end
local dropped, taken = claim_set(release), claim_set(claim)
local kept, seen = {}, {}
local function keep(f, t)
  local text = f .. ':' .. t
  if not seen[text] then
    seen[text] = true
    kept[#kept + 1] = f
    kept[#kept + 1] = t
  end
end
for j = 1, #claims, 2 do
  if taken[claims[j] .. ':' .. claims[j + 1]] or not dropped[claims[j] .. ':' .. claims[j + 1]] then
    keep(claims[j], claims[j + 1])
  end
end
for j = 1, #claim, 2 do
  if KEYS[3] then redis.call('HSET', KEYS[3], claim[j] .. ':' .. claim[j + 1], id) end
  keep(claim[j], claim[j + 1])
end
local flat = {}
for name, score in pairs(map) do
  flat[#flat + 1] = name
  flat[#flat + 1] = score
end
if #flat == 0 and #kept == 0 then
  redis.call('HDEL', KEYS[2], id)
else
  -- an empty Lua table encodes as {}; the readers accept it as an empty list
  redis.call('HSET', KEYS[2], id, cjson.encode({flat, kept}))
end
return {'ok'}
"""
)


# KEYS: record, shard ids, shard terms[, collection unique]
# ARGV: id, index prefix, ttl in ms ('' for no expiry), stream field names...
# Returns 1, or 0 when the record does not exist (nothing done).
EXPIRE = (
    COMMON
    + r"""
local id, prefix, ttl = ARGV[1], ARGV[2], ARGV[3]
prune(KEYS[2], KEYS[3], KEYS[4], prefix, string.sub(KEYS[1], 1, #KEYS[1] - #id))
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local expiry_key = expiry_of(KEYS[2])
local wrong = wrong_type({expiry_key, 'zset'})
if wrong then return wrong end
if ttl == '' then
  redis.call('PERSIST', KEYS[1])
  for j = 4, #ARGV do redis.call('PERSIST', KEYS[1] .. ':field:' .. ARGV[j]) end
  redis.call('ZREM', expiry_key, id)
else
  local at = now_ms() + tonumber(ttl)
  redis.call('PEXPIREAT', KEYS[1], at)
  for j = 4, #ARGV do redis.call('PEXPIREAT', KEYS[1] .. ':field:' .. ARGV[j], at) end
  redis.call('ZADD', expiry_key, at, id)
end
return 1
"""
)

# KEYS: shard ids, shard terms[, collection unique]
# ARGV: index prefix, record key prefix
# Returns {records removed, claims left to release...} (see prune()).
PRUNE = (
    COMMON
    + r"""
local removed, dropped = prune(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2])
return {removed, unpack(dropped)}
"""
)

# One read of a query's ids and, for a small page, their records, for the
# results a single index read gives (a page of an order index, a score range,
# a small set): one command instead of a transaction, and for a small page no
# second round trip, the ids and records coming from the same instant.  A
# record read by a script costs the server about twice what a pipelined
# HGETALL does, so a larger page returns its ids alone, for the caller to
# load with pipelined HGETALLs.
#
# KEYS: shard ids, shard terms[, collection unique] (as PRUNE)
# ARGV: index prefix, record key prefix, size limit ('' for none),
#   inline (the most records returned with their ids),
#   G, G guard keys (sets that must be empty),
#   S, S stream field names,
#   C, a command of C words counting the result ('' words: none),
#   the command reading the ids (the rest of ARGV).
# Returns {0} when a guard set is not empty; {1, count} when the count is
# over the limit; {3, ids} when there are more ids than inline; else
# {2, ids, then per id its HGETALL and a GET per stream}.
READ = (
    COMMON
    + r"""
local limit = ARGV[3]
local inline = tonumber(ARGV[4])
local at = 5
prune(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2])
local guards = tonumber(ARGV[at])
for j = 1, guards do
  if redis.call('SCARD', ARGV[at + j]) > 0 then return {0} end
end
at = at + guards + 1
local streams = {}
for j = 1, tonumber(ARGV[at]) do streams[j] = ARGV[at + j] end
at = at + #streams + 1
local words = tonumber(ARGV[at])
if words > 0 then
  local count = redis.call(unpack(ARGV, at + 1, at + words))
  if limit ~= '' and count > tonumber(limit) then return {1, count} end
end
at = at + words + 1
local ids = redis.call(unpack(ARGV, at, #ARGV))
if #ids > inline then return {3, ids} end
local out = {2, ids}
local prefix = ARGV[2]
-- hashes as maps (RESP3): a client speaking RESP3 reads each as a dict
-- (RESP2 clients get the flat list); a missing value is then nil, which
-- must not end the list: false stands for it
if redis.setresp then redis.setresp(3) end
for _, id in ipairs(ids) do
  local key = prefix .. id
  out[#out + 1] = redis.call('HGETALL', key)
  for j = 1, #streams do
    out[#out + 1] = redis.call('GET', key .. ':field:' .. streams[j]) or false
  end
end
return out
"""
)

# New records in bulk: the common batch of bulk_create (generated ids,
# create-only; no unique claims, streams, expiry or condition), with less per
# record than SAVE_MANY: the field names come once, and the writes every
# record makes to the shard's keys (id index, index entries, remembered
# terms) are made once for the batch, after every record was checked.
#
# KEYS: shard ids, shard terms, collection unique ('' for none: only for prune)
# ARGV: index prefix, record key prefix, nf, the nf field names, then per
#   record: id, terms text, ne, ne entry name/score pairs ('' score: a set),
#   its nf field values (in the names' order).
# Returns one SAVE reply per record: {'ok'}, {'same'} (this very write was
# applied before), {'exists'} or {'wrongtype', key, found, wanted}.
CREATE_MANY = (
    COMMON
    + r"""
local unique_key = KEYS[3]
if unique_key == '' then unique_key = nil end
local prefix, record_prefix = ARGV[1], ARGV[2]
local ids_key, terms_key = KEYS[1], KEYS[2]
local expiry_key = expiry_of(ids_key)
prune(ids_key, terms_key, unique_key, prefix, record_prefix)
local nf = tonumber(ARGV[3])
local names_at = 4
local first = names_at + nf

-- every entry the batch writes, by name (their keys are the prefix and
-- the name), and its kind; every record's key
local kinds, keys = {}, {}
local a = first
while a <= #ARGV do
  local ne = tonumber(ARGV[a + 2])
  for j = a + 3, a + 1 + 2 * ne, 2 do kinds[ARGV[j]] = entry_kind(ARGV[j + 1]) end
  keys[#keys + 1] = record_prefix .. ARGV[a]
  a = a + 3 + 2 * ne + nf
end
-- none of them exists (the common case): no record needs asking alone
local some_exist = #keys > 0 and redis.call('EXISTS', unpack(keys)) > 0

-- every key checked before the first write (see wrong_type)
local bad = {}
local function check(key, wanted)
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= wanted then return {'wrongtype', key, found, wanted} end
  return nil
end
local shared_bad = check(ids_key, 'zset') or check(terms_key, 'hash') or check(expiry_key, 'zset')
local any_bad = false
for name, kind in pairs(kinds) do
  bad[name] = check(prefix .. name, kind)
  if bad[name] then any_bad = true end
end

local replies, ids, terms, adds, created = {}, {}, {}, {}, {}
local fields = {}
for j = 0, nf - 1 do fields[2 * j + 1] = ARGV[names_at + j] end
a = first
local n = 0
while a <= #ARGV do
  local id, terms_text, ne = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local e, v = a + 3, a + 3 + 2 * ne
  a = v + nf
  n = n + 1
  local reply = shared_bad
  if not reply and any_bad then
    for j = e, v - 2, 2 do
      reply = bad[ARGV[j]]
      if reply then break end
    end
  end
  if not reply then
    local rkey = keys[n]
    for j = 0, nf - 1 do fields[2 * j + 2] = ARGV[v + j] end
    if some_exist and redis.call('EXISTS', rkey) == 1 then
      -- create-only; an identical record is this write, applied before
      local stored = redis.call('HGETALL', rkey)
      local same = #stored == 2 * nf
      if same then
        local want = as_map(fields)
        for j = 1, #stored, 2 do
          if want[stored[j]] ~= stored[j + 1] then same = false end
        end
      end
      if same then reply = {'same'} else reply = {'exists'} end
    else
      redis.call('HSET', rkey, unpack(fields))
      ids[#ids + 1] = 0
      ids[#ids + 1] = id
      created[#created + 1] = id
      for j = e, v - 2, 2 do
        local name, score = ARGV[j], ARGV[j + 1]
        local members = adds[name]
        if not members then
          members = {}
          adds[name] = members
        end
        if score ~= '' then members[#members + 1] = score end
        members[#members + 1] = id
      end
      if terms_text ~= '' then
        terms[#terms + 1] = id
        terms[#terms + 1] = terms_text
      end
      reply = {'ok'}
    end
  end
  replies[#replies + 1] = reply
end

if #created > 0 then
  redis.call('ZADD', ids_key, unpack(ids))
  for name, members in pairs(adds) do
    if kinds[name] == 'set' then
      redis.call('SADD', prefix .. name, unpack(members))
    else
      redis.call('ZADD', prefix .. name, unpack(members))
    end
  end
  if #terms > 0 then redis.call('HSET', terms_key, unpack(terms)) end
  -- a new record does not expire (the expiry index may remember the id of
  -- a record deleted by other means)
  if redis.call('EXISTS', expiry_key) == 1 then
    redis.call('ZREM', expiry_key, unpack(created))
  end
end
return replies
"""
)
