-- wrk script for `cordon-bench http --listen-only`: every request posts a distinct
-- GuardDuty finding (ids unique per thread and request), authenticated by API key.
--   wrk -t2 -c64 -d20s --latency -s Fixtures/bench/wrk-findings.lua http://127.0.0.1:8089/v1/findings
-- A request counts as accepted when answered 202 (after its finding is durable); wrk
-- reports any other status as "Non-2xx or 3xx responses".

local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  n = 0
  headers = {["Content-Type"] = "application/json", ["X-Cordon-Api-Key"] = os.getenv("CORDON_BENCH_KEY") or "bench-key"}
end

function request()
  n = n + 1
  local id = string.format("wrk-%d-%d", tid, n)
  local body = '{"version":"0","id":"' .. id .. '","detail-type":"GuardDuty Finding","source":"aws.guardduty",'
    .. '"account":"111122223333","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],'
    .. '"detail":{"id":"' .. id .. '","type":"Recon:EC2/PortProbeUnprotectedPort","severity":5,'
    .. '"updatedAt":"2026-03-01T10:00:00Z","resource":{"resourceType":"Instance","instanceDetails":{"instanceId":"i-' .. id .. '"}}}}'
  return wrk.format("POST", nil, headers, body)
end
