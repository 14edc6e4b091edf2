-- wrk script of bench/intake.py: each request is a kiosk rating of a dossier no other request rates.
-- Dossier codes are <prefix>-<thread>-<n>; the bench loads those dossiers beforehand so every rating counts.
local counter = 1
local threads = {}
local token = os.getenv("BENCH_TOKEN")
local prefix = os.getenv("BENCH_PREFIX")

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  local code = string.format("%s-%d-%d", prefix, id, counter)
  -- 20,000 kiosks per wrk thread, each rated about once in the run: a province's kiosks rating at once. (997
  -- kiosks rated ~100 times each within one minute of `submitted_at` made every rating a kiosk burst and
  -- each write read back thousands of its kiosks' earlier ratings: the burst rule's worst case, growing.)
  local device = string.format("BENCH-KIOSK-%d-%d", id, counter % 20000)
  counter = counter + 1
  local body = '{"dossier_code":"' .. code .. '","channel":"kiosk","device_id":"' .. device ..
    '","submitted_at":"2026-11-18T10:02:10+07:00","overall":"satisfied","attitude":"good",' ..
    '"criteria":{"access":5,"procedure":4,"officer":5,"result":5,"feedback":4},"reasons":[],"comment":""}'
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local by_status = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for status, count in pairs(counts) do
      by_status[status] = (by_status[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(by_status) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"socket_errors": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ", ")))
end
