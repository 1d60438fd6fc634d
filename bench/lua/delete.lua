-- DELETE seeded sources `d-<run>-<tid>-<n>`, each once.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function request()
  n = n + 1
  return wrk.format("DELETE", string.format("%s?key=d-%s-%d-%d", api, run, tid, n), auth)
end
