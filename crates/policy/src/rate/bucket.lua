-- The token bucket that every replica of a Portcullis gateway shares for one caller of a rule
-- with `rateLimit.scope: Global`. Atomic: Redis runs one script at a time, so two replicas can
-- never take the same token. Time is Redis's own clock, so the replicas' clocks do not matter.
--
-- KEYS[1]  the bucket, a hash {tokens, at}: tokens left (fractional) at microsecond `at`
-- ARGV[1]  capacity: tokens a full bucket holds (requests + burst)
-- ARGV[2]  requests: tokens added per period
-- ARGV[3]  the period, in microseconds
-- ARGV[4]  want: the most tokens to take (1, or a replica's lease)
--
-- Returns {taken, left, full_in, next_in}: the tokens taken (0 to want), the whole tokens left,
-- the microseconds until the bucket is full again and until it holds one token (0: it does).
-- A full bucket is deleted, and any other expires when it would be full: a caller gone idle
-- costs Redis nothing.

-- Before Redis 5, a script that reads TIME may write only when replicated by its effects (a
-- no-op since then).
if redis.replicate_commands then
  redis.replicate_commands()
end

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local capacity = tonumber(ARGV[1])
local per_us = tonumber(ARGV[2]) / tonumber(ARGV[3])
local want = tonumber(ARGV[4])

local tokens = capacity
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
if state[1] and state[2] then
  local elapsed = math.max(0, now - tonumber(state[2]))
  tokens = math.min(capacity, tonumber(state[1]) + elapsed * per_us)
end

local taken = math.max(0, math.min(want, math.floor(tokens)))
tokens = tokens - taken
local full_in = math.ceil((capacity - tokens) / per_us)
local next_in = 0
if tokens < 1 then
  next_in = math.ceil((1 - tokens) / per_us)
end

if full_in > 0 then
  -- `at` as text, digit for digit: a number would be written with 14 significant digits only.
  local at = clock[1] .. string.format('%06d', tonumber(clock[2]))
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', at)
  redis.call('PEXPIRE', KEYS[1], math.ceil(full_in / 1000))
else
  redis.call('DEL', KEYS[1])
end

local most = 9007199254740992 -- 2^53: replies are integers
return {taken, math.floor(tokens), math.min(full_in, most), math.min(next_in, most)}
