-- POST a new source; keys are unique per run, thread and request.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function request()
  n = n + 1
  local body = string.format(
    '{"key":"c-%s-%d-%d","name":"Created %d","description":"Daily customer data export.",' ..
    '"connectorKey":"salesforce","sourceConfig":{"objectName":"Contact"},' ..
    '"syncMode":"incremental","schedule":{"cron":"0 2 * * *"},"status":"active"}',
    run, tid, n, n)
  return wrk.format("POST", api, json_auth, body)
end
