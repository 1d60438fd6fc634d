-- GET one list page (BENCH_PATH carries the query: none, or ?cursor=...).
-- Also the ceiling's script, so both servers see the same requests.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

wrk.method = "GET"
wrk.path = api
for name, value in pairs(auth) do wrk.headers[name] = value end
