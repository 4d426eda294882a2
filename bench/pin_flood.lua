-- wrk script for bench/run: the raw HTTP ceiling for pin calls.
--
-- Every request is the call pinsync makes for a Pinarkive pin,
-- POST /api/v3/files/pin/{cid} with X-API-Key and a JSON body naming the
-- cluster, each with a distinct, valid CIDv1 (raw codec, sha2-256 multihash
-- whose 32 digest bytes hold the thread number and a counter), so the
-- emulator creates a new pin every time (201) instead of answering 409.
--
-- The key comes from PINARKIVE_API_KEY (the emulator's default otherwise).

local alphabet = "abcdefghijklmnopqrstuvwxyz234567"
local threads = {}
local counter = 0
local key = os.getenv("PINARKIVE_API_KEY") or "demo-pinarkive-key"

-- RFC 4648 base32, lower case, no padding.
local function base32(bytes)
  local out = {}
  local buffer, bits = 0, 0
  for i = 1, #bytes do
    buffer = buffer * 256 + bytes[i]
    bits = bits + 8
    while bits >= 5 do
      bits = bits - 5
      local index = math.floor(buffer / 2 ^ bits)
      buffer = buffer - index * 2 ^ bits
      out[#out + 1] = alphabet:sub(index + 1, index + 1)
    end
  end
  if bits > 0 then
    local index = buffer * 2 ^ (5 - bits)
    out[#out + 1] = alphabet:sub(index + 1, index + 1)
  end
  return table.concat(out)
end

local function cid(thread, n)
  -- CIDv1, raw codec (0x55), sha2-256 (0x12), 32-byte digest.
  local bytes = { 0x01, 0x55, 0x12, 0x20, 0xbe, thread % 256 }
  for _ = 1, 22 do
    bytes[#bytes + 1] = 0
  end
  local digits = {}
  for i = 8, 1, -1 do
    digits[i] = n % 256
    n = math.floor(n / 256)
  end
  for i = 1, 8 do
    bytes[#bytes + 1] = digits[i]
  end
  return "b" .. base32(bytes)
end

-- Gives each thread its number, as the global `thread_no` of its Lua state.
function setup(thread)
  thread:set("thread_no", #threads + 1)
  threads[#threads + 1] = thread
end

function request()
  counter = counter + 1
  local t = thread_no or 0
  local c = cid(t, counter)
  local body = '{"customName":"wrk-' .. t .. '-' .. counter .. '","cl":"cl0-global"}'
  return wrk.format("POST", "/api/v3/files/pin/" .. c, {
    ["Content-Type"] = "application/json",
    ["X-API-Key"] = key,
  }, body)
end

-- Lets bench/run check that the flood created pins rather than failed.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk-errors connect=%d read=%d write=%d status=%d timeout=%d\n",
    e.connect, e.read, e.write, e.status, e.timeout))
end
