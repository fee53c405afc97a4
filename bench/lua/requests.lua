-- Replays a pool of pre-built requests round-robin, so wrk spends no per-request time building them.
-- BENCH_REQUESTS names a file with one request per line, tab-separated:
--   METHOD <tab> PATH <tab> BODY (or "-") [<tab> Header-Name: value]...
-- BENCH_DELAY_MS, when set, paces each connection for latency runs: after each answer it waits a random
-- 0 to 2 x BENCH_DELAY_MS ms (mean BENCH_DELAY_MS). A fixed wait would keep the connections in lockstep:
-- all of them send in the same instant, every round, so the last in each burst waits for the other 99 and
-- the p99 measures the burst (99 x the per-request cost), not the latency a proxy adds to a request.
-- done() prints one JSON line for bench/wrk.py to read.

local pool = {}
local n = 0
local i = 0
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")

function init(args)
  local file = assert(io.open(os.getenv("BENCH_REQUESTS"), "r"))
  for line in file:lines() do
    local fields = {}
    for field in string.gmatch(line, "[^\t]+") do
      fields[#fields + 1] = field
    end
    local headers = {}
    for k = 4, #fields do
      local name, value = string.match(fields[k], "^([^:]+):%s*(.*)$")
      headers[name] = value
    end
    local body = nil
    if fields[3] ~= "-" then
      body = fields[3]
    end
    n = n + 1
    pool[n] = wrk.format(fields[1], fields[2], headers, body)
  end
  file:close()
  -- Threads start at different offsets so they do not march through the pool in step.
  i = math.random(n) - 1
end

function request()
  i = i % n + 1
  return pool[i]
end

if delay_ms then
  function delay()
    return math.random(0, 2 * delay_ms)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
