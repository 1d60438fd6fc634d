-- PUT a rename of the thread's own source `u-<tid>`. With BENCH_VERSIONS
-- (the current rowVersion of each thread's source, comma-separated) every
-- request carries the version the previous response returned. With
-- BENCH_SECRETS=1, a new S3 config instead: one credential sent again as
-- it is (its version kept), the other a new value each time; with
-- BENCH_CONFIG=1, a new S3 config of the same size without credentials.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local version = nil
local secrets = os.getenv("BENCH_SECRETS") == "1"
local config = os.getenv("BENCH_CONFIG") == "1"

function init(args)
  local versions = os.getenv("BENCH_VERSIONS")
  if versions then
    local i = 0
    for v in versions:gmatch("%d+") do
      if i == tid then version = tonumber(v) end
      i = i + 1
    end
  end
end

function request()
  n = n + 1
  local body
  if secrets then
    body = string.format(
      '{"key":"u-%d","connectorKey":"s3","sourceConfig":{"bucket":"orders",' ..
      '"aws_access_key_id":"AKIA%d","aws_secret_access_key":"secret-%s-%d"}}',
      tid, tid, run, n)
  elseif config then
    body = string.format(
      '{"key":"u-%d","connectorKey":"s3","sourceConfig":{"bucket":"orders",' ..
      '"region":"eu-west-%d","path_prefix":"exports/%s-%d/"}}',
      tid, tid, run, n)
  elseif version then
    body = string.format('{"key":"u-%d","name":"Renamed %d","rowVersion":%d}', tid, n, version)
  else
    body = string.format('{"key":"u-%d","name":"Renamed %d"}', tid, n)
  end
  return wrk.format("PUT", api, json_auth, body)
end

if os.getenv("BENCH_VERSIONS") then
  function response(status, headers, body)
    if status == 200 then
      version = tonumber(body:match('"rowVersion": ?(%d+)'))
    end
  end
end
