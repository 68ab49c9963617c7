-- POST /api/v1/purchases/batch: 1,000 purchases a request, each as purchase.lua makes them.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

local size = 1000

function init(args) load(args) end

function request()
  local lines = {}
  for i = 1, size do lines[i] = line() end
  return wrk.format("POST", "/api/v1/purchases/batch", headers(),
                    "[" .. table.concat(lines, ",") .. "]")
end
