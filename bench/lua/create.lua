-- POST a new source; keys are unique per run, thread and request. With
-- BENCH_SECRETS=1, an S3 source with its two credentials (both secret).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local secrets = os.getenv("BENCH_SECRETS") == "1"

function request()
  n = n + 1
  local body
  if secrets then
    body = string.format(
      '{"key":"c-%s-%d-%d","name":"Created %d","description":"Daily order files.",' ..
      '"connectorKey":"s3","sourceConfig":{"bucket":"orders","aws_access_key_id":"AKIA%d",' ..
      '"aws_secret_access_key":"secret-%s-%d-%d"},' ..
      '"syncMode":"incremental","schedule":{"cron":"0 2 * * *"},"status":"active"}',
      run, tid, n, n, n, run, tid, n)
  else
    body = string.format(
      '{"key":"c-%s-%d-%d","name":"Created %d","description":"Daily customer data export.",' ..
      '"connectorKey":"salesforce","sourceConfig":{"objectName":"Contact"},' ..
      '"syncMode":"incremental","schedule":{"cron":"0 2 * * *"},"status":"active"}',
      run, tid, n, n)
  end
  return wrk.format("POST", api, json_auth, body)
end
