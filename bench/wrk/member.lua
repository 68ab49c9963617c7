-- GET /api/v1/members/{card}: a random member card, a random merchant's token.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

function init(args) load(args) end

function request()
  return wrk.format("GET", "/api/v1/members/" .. card(), headers())
end
