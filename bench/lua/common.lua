-- Shared by every scenario: settings from the environment, a thread id per
-- wrk thread (one connection each, so a thread owns its keys), and one JSON
-- summary line for bench/run.py.
token = os.getenv("BENCH_TOKEN") or ""
run = os.getenv("BENCH_RUN") or "r"
api = os.getenv("BENCH_PATH") or "/api/v1/data-sources"
auth = { ["Authorization"] = "Bearer " .. token }
json_auth = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
-- BENCH_CONNECTION_CLOSE=1: a new connection per request. In these tables, not
-- wrk -H: wrk.format() with a headers table leaves wrk.headers out.
if os.getenv("BENCH_CONNECTION_CLOSE") == "1" then
  auth["Connection"] = "close"
  json_auth["Connection"] = "close"
end
n = 0

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
