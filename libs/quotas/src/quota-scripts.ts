/**
 * Lua scripts that change quota state atomically, one round trip each. Every key a script touches
 * is passed in KEYS (Dragonfly requires it) and all keys of one tenant share the hash tag
 * `{<tenant>}`, so they live on one slot of a cluster. Time comes from the server (`TIME`): replicas
 * with skewed clocks still share one bucket. Floats go back to the client as strings because Redis
 * truncates Lua numbers to integers.
 */

/** Shared helpers: server time and a refilled token bucket stored as a hash {t: tokens, ts: ms}. */
const PRELUDE = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local function level(key, cap, perMs)
  local v = redis.call('HMGET', key, 't', 'ts')
  local tokens, ts = tonumber(v[1]), tonumber(v[2])
  if tokens == nil or ts == nil then return cap end
  if now > ts then tokens = math.min(cap, tokens + (now - ts) * perMs) end
  return tokens
end
local function store(key, tokens, cap, perMs)
  redis.call('HSET', key, 't', string.format('%.6f', tokens), 'ts', string.format('%.3f', now))
  -- an idle bucket expires once it would be full again: missing means full
  redis.call('PEXPIRE', key, math.ceil((cap - tokens) / perMs) + 1000)
end
local function untilFull(tokens, cap, perMs)
  if tokens >= cap then return 0 end
  return (cap - tokens) / perMs
end
`;

/**
 * Admission: budget, then the request bucket, then the token reservation; state changes only when
 * all three pass. Limits come from the tenant's cached overrides (KEYS[1]) over the caller's
 * defaults. Returns `{'L'}` when the overrides are not cached, `{'S'}` when the month's spend
 * counter is missing (the caller loads them and calls again), otherwise
 * `{status, retryMs, reqLeft, reqResetMs, tokLeft, tokResetMs, spend, notify, rps, burst, tpm, budget}`
 * with status OK | R (requests) | T (tokens) | X (reservation larger than tokensPerMinute) | B (budget)
 * and notify a subset of "w" (80 % warning newly due) and "x" (exceeded newly due).
 *
 * KEYS: limits, request bucket, token bucket, spend, warning flag, exceeded flag
 * ARGV: default rps, default burst, default tpm, default budget, requests to take (0|1),
 *       tokens to reserve, flag ttl seconds, peek (1 = change nothing), warn fraction,
 *       lease requests, lease tokens, lease share
 *
 * Lease (optional, 0 by default): once the request is admitted, up to `lease requests` more
 * requests and `lease tokens` more tokens are taken for the caller to hand out locally, never more
 * than `lease share` of the bucket's capacity nor more than what is left (a lease never puts a
 * bucket in debt). What was granted comes back as two more fields:
 * `..., budget, leasedRequests, leasedTokens`.
 */
export const ADMIT_SCRIPT = `${PRELUDE}
local lim = redis.call('HMGET', KEYS[1], 'loaded', 'rps', 'burst', 'tpm', 'budget')
if not lim[1] then return {'L'} end
local rps = tonumber(lim[2] or ARGV[1])
local burst = tonumber(lim[3] or ARGV[2])
local tpm = tonumber(lim[4] or ARGV[3])
local budget = tonumber(lim[5] or ARGV[4])
local takeReq = tonumber(ARGV[5])
local want = tonumber(ARGV[6])
local peek = ARGV[8] == '1'
if rps > 0 and burst < 1 then burst = math.max(1, math.ceil(rps)) end

local gotReq, gotTok = 0, 0
local function answer(status, retry, reqLeft, reqReset, tokLeft, tokReset, spend, notify)
  return {status, string.format('%.3f', retry), string.format('%.6f', reqLeft), string.format('%.3f', reqReset),
    string.format('%.6f', tokLeft), string.format('%.3f', tokReset), string.format('%.10f', spend), notify,
    tostring(rps), tostring(burst), tostring(tpm), tostring(budget), tostring(gotReq), tostring(gotTok)}
end

local spend, notify = 0, ''
if budget > 0 then
  local s = redis.call('GET', KEYS[4])
  if not s then return {'S'} end
  spend = tonumber(s)
  if not peek and spend >= tonumber(ARGV[9]) * budget then
    if redis.call('SET', KEYS[5], '1', 'NX', 'EX', ARGV[7]) then notify = notify .. 'w' end
  end
end

local reqLeft, reqReset, reqPerMs = -1, 0, 0
if rps > 0 then
  reqPerMs = rps / 1000
  reqLeft = level(KEYS[2], burst, reqPerMs)
  reqReset = untilFull(reqLeft, burst, reqPerMs)
end
local tokLeft, tokReset, tokPerMs = -1, 0, 0
if tpm > 0 then
  tokPerMs = tpm / 60000
  tokLeft = level(KEYS[3], tpm, tokPerMs)
  tokReset = untilFull(tokLeft, tpm, tokPerMs)
end

if budget > 0 and spend >= budget then
  if not peek and redis.call('SET', KEYS[6], '1', 'NX', 'EX', ARGV[7]) then notify = notify .. 'x' end
  return answer('B', 0, reqLeft, reqReset, tokLeft, tokReset, spend, notify)
end
if peek then return answer('OK', 0, reqLeft, reqReset, tokLeft, tokReset, spend, notify) end
if rps > 0 and takeReq > 0 and reqLeft < takeReq then
  return answer('R', (takeReq - reqLeft) / reqPerMs, reqLeft, reqReset, tokLeft, tokReset, spend, notify)
end
if tpm > 0 and want > 0 then
  if want > tpm then return answer('X', 0, reqLeft, reqReset, tokLeft, tokReset, spend, notify) end
  if tokLeft < want then
    return answer('T', (want - tokLeft) / tokPerMs, reqLeft, reqReset, tokLeft, tokReset, spend, notify)
  end
end
if rps > 0 and takeReq > 0 then
  gotReq = math.max(0, math.min(tonumber(ARGV[10] or '0'), math.floor(burst * tonumber(ARGV[12] or '0')),
    math.floor(reqLeft - takeReq)))
  reqLeft = reqLeft - takeReq - gotReq
  store(KEYS[2], reqLeft, burst, reqPerMs)
  reqReset = untilFull(reqLeft, burst, reqPerMs)
end
if tpm > 0 and want > 0 then
  gotTok = math.max(0, math.min(tonumber(ARGV[11] or '0'), math.floor(tpm * tonumber(ARGV[12] or '0')),
    math.floor(tokLeft - want)))
  tokLeft = tokLeft - want - gotTok
  store(KEYS[3], tokLeft, tpm, tokPerMs)
  tokReset = untilFull(tokLeft, tpm, tokPerMs)
end
return answer('OK', 0, reqLeft, reqReset, tokLeft, tokReset, spend, notify)
`;

/**
 * Gives back what a lease did not hand out: `requests` to the request bucket and `tokens` to the
 * token bucket (tokens may be negative: the lease's requests used more than they reserved, which
 * may leave the bucket in debt, as a settlement does). Buckets never exceed their capacity.
 * KEYS: request bucket, token bucket. ARGV: rps, burst, tpm, requests, tokens. Returns 'OK'.
 */
export const REFUND_SCRIPT = `${PRELUDE}
local rps, burst, tpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local requests, tokens = tonumber(ARGV[4]), tonumber(ARGV[5])
if rps > 0 and requests > 0 then
  local perMs = rps / 1000
  store(KEYS[1], math.min(burst, level(KEYS[1], burst, perMs) + requests), burst, perMs)
end
if tpm > 0 and tokens ~= 0 then
  local perMs = tpm / 60000
  store(KEYS[2], math.min(tpm, level(KEYS[2], tpm, perMs) + tokens), tpm, perMs)
end
return 'OK'
`;

/**
 * Settles a token reservation: gives back `reserved - actual` (or takes more when the request used
 * more than reserved, which may leave the bucket in debt). KEYS: token bucket. ARGV: tpm, delta.
 * Returns the tokens left, as a string.
 */
export const SETTLE_SCRIPT = `${PRELUDE}
local tpm = tonumber(ARGV[1])
local delta = tonumber(ARGV[2])
if tpm <= 0 or delta == 0 then return '0' end
local perMs = tpm / 60000
local tokens = math.min(tpm, level(KEYS[1], tpm, perMs) + delta)
store(KEYS[1], tokens, tpm, perMs)
return string.format('%.6f', tokens)
`;

/**
 * Adds committed cost to the month's spend counter, only if the counter exists (a missing one is
 * rebuilt from Postgres, which already holds this cost), and raises the once-per-period flags.
 * Returns `{'L'}` (overrides not cached), `{'S'}` (counter missing) or `{'OK', spend, notify, budget}`.
 * KEYS: limits, spend, warning flag, exceeded flag. ARGV: amount, default budget, flag ttl s, warn fraction.
 */
export const RECORD_SPEND_SCRIPT = `
local lim = redis.call('HMGET', KEYS[1], 'loaded', 'budget')
if not lim[1] then return {'L'} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'S'} end
local spend = tonumber(redis.call('INCRBYFLOAT', KEYS[2], ARGV[1]))
local budget = tonumber(lim[2] or ARGV[2])
local notify = ''
if budget > 0 then
  if spend >= tonumber(ARGV[4]) * budget and redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3]) then
    notify = notify .. 'w'
  end
  if spend >= budget and redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[3]) then
    notify = notify .. 'x'
  end
end
return {'OK', string.format('%.10f', spend), notify, tostring(budget)}
`;
