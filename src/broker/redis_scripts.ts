// The Lua scripts of the Redis broker and the key layout they share. Each script is one atomic
// step where two nodes could race (an offset assigned and its entry appended; a presence record
// added or removed with its counters; the expiry sweep that must report each leave once).
// Everything works on Redis 7.0 (no hash-field expiry): time-based expiry uses the times the
// scripts are given, and the keys' own TTLs only collect what no node touches any more.
//
// Layout (P = the key prefix, `_ac_:` by default; <s> a stream name, <sid> a session id):
//   P epoch    string  the epoch every node stamps (a new one when Redis lost it)
//   P o        hash  stream -> its last offset
//   P oi       zset  stream scored by its last publication (ms): idle ones are dropped after
//                    10 history TTLs, as the memory broker drops them
//   P maxo     string  the highest offset issued; P dropped: set once an idle stream was dropped
//   P h:<s>    stream of entries with ID 0-<offset>, fields d (data JSON), t (ms)  (TTL: history TTL)
//   P s:<sid>  string  13-digit deadline (ms) then the session snapshot (TTL: sessions TTL)
//              (a string, not a hash: 0.6× the memory; a touch rewrites the deadline in place)
//   P pi:<s>   hash  presence id -> info JSON ("" when none)           (the stream's records)
//   P ps:<s>   hash  sid -> presence id                                 (the stream's sessions)
//   P pn:<s>   hash  presence id -> number of its sessions in <s>
//   P pss:<sid> set  streams where <sid> has a record
//   P pd       zset  sid scored by its presence deadline (ms)
import { createHash } from "node:crypto";

export interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash("sha1").update(source).digest("hex") };
}

// Drops expired entries from the front of a history stream; returns the first one kept (or nil).
const TRIM = `
local function trim(key, min_t)
  while true do
    local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
    if #first == 0 then return nil end
    local fields = first[1][2]
    local t = nil
    for i = 1, #fields, 2 do if fields[i] == 't' then t = tonumber(fields[i + 1]) end end
    if t ~= nil and t >= min_t then return first[1] end
    redis.call('XDEL', key, first[1][1])
  end
end
`;

/**
 * KEYS: epoch, o, oi, maxo, dropped, h:<s>. ARGV: stream, data, now ms, history limit, history TTL
 * ms, an epoch for a Redis without one, oldest time kept (ms). Returns {epoch, offset}.
 * A stream Redis has no offset of starts at 1, or above every offset issued once an idle stream
 * was dropped (so no client's old offset is reused: the memory broker's rule).
 */
export const PUBLISH = script(`${TRIM}
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[6]
  redis.call('SET', KEYS[1], epoch)
end
local last = redis.call('HGET', KEYS[2], ARGV[1])
local offset
if last then
  offset = tonumber(last) + 1
else
  offset = 1
  if redis.call('EXISTS', KEYS[5]) == 1 then offset = (tonumber(redis.call('GET', KEYS[4])) or 0) + 1 end
  redis.call('DEL', KEYS[6])
end
redis.call('HSET', KEYS[2], ARGV[1], offset)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
if offset > (tonumber(redis.call('GET', KEYS[4])) or 0) then redis.call('SET', KEYS[4], offset) end
redis.call('XADD', KEYS[6], 'MAXLEN', ARGV[4], '0-' .. offset, 'd', ARGV[2], 't', ARGV[3])
redis.call('PEXPIRE', KEYS[6], ARGV[5])
trim(KEYS[6], tonumber(ARGV[7]))
return {epoch, offset}
`);

/**
 * KEYS: epoch, o, h:<s>. ARGV: stream, epoch, offset, oldest time kept (ms).
 * Returns {'epoch', current} | {'none'} | {'empty'} | {'low', lowest} | {'latest', latest} |
 * {'ok', entries after offset}.
 */
export const HISTORY_FROM = script(`${TRIM}
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[2] then return {'epoch', current or ''} end
local last = redis.call('HGET', KEYS[2], ARGV[1])
if not last then return {'none'} end
local first = trim(KEYS[3], tonumber(ARGV[4]))
if first == nil then return {'empty'} end
local low = tonumber(string.match(first[1], '^0%-(%d+)$'))
local offset = tonumber(ARGV[3])
if low == nil then return {'low', first[1]} end
if low > offset then return {'low', tostring(low)} end
if offset > tonumber(last) then return {'latest', last} end
return {'ok', redis.call('XRANGE', KEYS[3], '(0-' .. ARGV[3], '+')}
`);

/** KEYS: epoch, h:<s>. ARGV: oldest time kept (ms). Returns {epoch or false, entries}. */
export const HISTORY_ALL = script(`${TRIM}
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {false, {}} end
trim(KEYS[2], tonumber(ARGV[1]))
return {epoch, redis.call('XRANGE', KEYS[2], '-', '+')}
`);

/**
 * KEYS: o, oi, dropped. ARGV: idle-before ms, batch size. Forgets the offsets of streams nobody
 * published to since (their history expired long ago); returns how many.
 */
export const DROP_IDLE_STREAMS = script(`
local idle = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, stream in ipairs(idle) do
  redis.call('HDEL', KEYS[1], stream)
  redis.call('ZREM', KEYS[2], stream)
end
if #idle > 0 then redis.call('SET', KEYS[3], '1') end
return #idle
`);

/** Width of the deadline in front of a session snapshot (ms since 1970 fit until the year 2286). */
export const SESSION_DEADLINE_DIGITS = 13;

/** KEYS: s:<sid>... ARGV: 13-digit deadline ms, TTL ms. Restarts the TTL of the sessions that exist. */
export const TOUCH_SESSIONS = script(`
for i = 1, #KEYS do
  if redis.call('PEXPIRE', KEYS[i], ARGV[2]) == 1 then
    redis.call('SETRANGE', KEYS[i], 0, ARGV[1])
  end
end
return #KEYS
`);

/**
 * KEYS: pi:<s>, ps:<s>, pn:<s>, pss:<sid>, pd. ARGV: stream, sid, pid, info JSON, deadline ms.
 * Returns {'mismatch'} | {'join'} | {'known'}.
 */
export const PRESENCE_ADD = script(`
local known = redis.call('HGET', KEYS[2], ARGV[2])
if known and known ~= ARGV[3] then return {'mismatch'} end
if not known then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  redis.call('SADD', KEYS[4], ARGV[1])
  redis.call('ZADD', KEYS[5], 'NX', ARGV[5], ARGV[2])
end
local is_new = redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
if is_new == 1 then return {'join'} end
return {'known'}
`);

// Removes the record of one session from one stream; returns the presence id when it left.
const REMOVE = `
local function remove(prefix, stream, sid)
  local pi, ps, pn = prefix .. 'pi:' .. stream, prefix .. 'ps:' .. stream, prefix .. 'pn:' .. stream
  local pid = redis.call('HGET', ps, sid)
  if not pid then return nil end
  redis.call('HDEL', ps, sid)
  local pss = prefix .. 'pss:' .. sid
  redis.call('SREM', pss, stream)
  if redis.call('SCARD', pss) == 0 then redis.call('ZREM', prefix .. 'pd', sid) end
  if redis.call('HINCRBY', pn, pid, -1) <= 0 then
    redis.call('HDEL', pn, pid)
    redis.call('HDEL', pi, pid)
    return pid
  end
  return false
end
`;

/**
 * ARGV: prefix, stream, sid (keys are derived: the sweep below needs them derived too).
 * Returns {'nostream'} | {'norecord'} | {'leave', pid} | {'stay'}.
 */
export const PRESENCE_REMOVE = script(`${REMOVE}
if redis.call('EXISTS', ARGV[1] .. 'pi:' .. ARGV[2]) == 0 then return {'nostream'} end
local left = remove(ARGV[1], ARGV[2], ARGV[3])
if left == nil then return {'norecord'} end
if left then return {'leave', left} end
return {'stay'}
`);

/**
 * ARGV: prefix, now ms, batch size. Removes every record of the sessions whose deadline passed
 * (up to a batch of sessions) and returns {stream, pid, stream, pid, ...} of the ids that left.
 * Atomic, so when several nodes sweep at once each leave is reported by exactly one of them.
 */
export const PRESENCE_EXPIRE = script(`${REMOVE}
local pd = ARGV[1] .. 'pd'
local sids = redis.call('ZRANGEBYSCORE', pd, '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local leaves = {}
for _, sid in ipairs(sids) do
  local pss = ARGV[1] .. 'pss:' .. sid
  for _, stream in ipairs(redis.call('SMEMBERS', pss)) do
    local left = remove(ARGV[1], stream, sid)
    if left then
      table.insert(leaves, stream)
      table.insert(leaves, left)
    end
  end
  redis.call('DEL', pss)
  redis.call('ZREM', pd, sid)
end
return leaves
`);
