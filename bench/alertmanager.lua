-- bench/alertmanager.lua: wrk posts Alertmanager (payload version 4)
-- webhooks to /hooks/alertmanager and counts what is not a 200.  64 alert
-- groups take turns, as a busy Alertmanager's would; the token comes from
-- the environment (BENCH_TOKEN).  done() prints one "BENCH {json}" line.

local token = os.getenv("BENCH_TOKEN") or ""
local bodies = {}
for i = 0, 63 do
  bodies[#bodies + 1] = string.format([[{"receiver":"switchboard","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"HighCPUTemp%d","instance":"web:9100","job":"node","severity":"critical"},"annotations":{"summary":"CPU at 95 C"},"startsAt":"2024-05-01T10:00:00.000Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=node_hwmon_temp","fingerprint":"5ef77f1f8a3e%04x"},{"status":"firing","labels":{"alertname":"HighCPUTemp%d","instance":"mail:9100","job":"node","severity":"warning"},"annotations":{"summary":"CPU at 86 C"},"startsAt":"2024-05-01T10:00:05.000Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=node_hwmon_temp","fingerprint":"2cd1a3d9b1aa%04x"}],"groupLabels":{"alertname":"HighCPUTemp%d"},"commonLabels":{"alertname":"HighCPUTemp%d","job":"node"},"commonAnnotations":{},"externalURL":"http://alertmanager:9093","version":"4","groupKey":"{}:{alertname=\"HighCPUTemp%d\"}","truncatedAlerts":0}]],
    i, i, i, i, i, i, i)
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

n, bad = 0, 0   -- globals: done() reads each thread's bad
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[n % #bodies + 1])
end

function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  print(string.format('BENCH {"ok":%d,"bad":%d,"errors":%d,"seconds":%.3f,"p50_ms":%.2f,"p99_ms":%.2f}',
    summary.requests - b, b, errors, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
