-- POST /api/v1/purchases: a random member card, a random merchant's token, a new external_id.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

function init(args) load(args) end

function request()
  return wrk.format("POST", "/api/v1/purchases", headers(), line())
end
