-- The soak's mixed load, per thread in a cycle of 20 requests: 10 list the
-- first page, 2 a deep page (BENCH_CURSOR), 2 create, 2 update the thread's
-- own source without rowVersion, 2 with it (tracked from each answer), and
-- 2 delete what this thread created, so the table stays the same size.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local list_auth = { ["Authorization"] = "Bearer " .. (os.getenv("BENCH_LIST_TOKEN") or "") }
local deep = api .. "?cursor=" .. (os.getenv("BENCH_CURSOR") or "")
local version = 1
local created, deleted = 0, 0

function init(args)
  local i = 0
  for v in (os.getenv("BENCH_VERSIONS") or ""):gmatch("%d+") do
    if i == tid then version = tonumber(v) end
    i = i + 1
  end
end

function request()
  n = n + 1
  local step = n % 20
  if step >= 18 and deleted < created then
    deleted = deleted + 1
    return wrk.format("DELETE", string.format("%s?key=c-%s-%d-%d", api, run, tid, deleted), auth)
  elseif step == 12 or step == 13 then
    created = created + 1
    local body = string.format('{"key":"c-%s-%d-%d","name":"Soak %d"}', run, tid, created, n)
    return wrk.format("POST", api, json_auth, body)
  elseif step == 14 or step == 15 then
    return wrk.format("PUT", api, json_auth, string.format('{"key":"u-%d","name":"S%d"}', tid, n))
  elseif step == 16 or step == 17 then
    local body = string.format('{"key":"u-%d","name":"S%d","rowVersion":%d}', tid, n, version)
    return wrk.format("PUT", api, json_auth, body)
  elseif step == 10 or step == 11 then
    return wrk.format("GET", deep, list_auth)
  end
  return wrk.format("GET", api, list_auth)
end

function response(status, headers, body)
  if status == 200 then
    local v = body:match('"rowVersion": ?(%d+)')
    if v and body:match('"key": ?"u%-' .. tid .. '"') then version = tonumber(v) end
  end
end
