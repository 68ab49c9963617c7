-- Shared by the wrk scripts of bench/run.py: each thread reads the member cards and the merchant
-- tokens the harness wrote (one a line, in the directory given after `--`) and numbers itself,
-- so external ids stay unique across threads and runs.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

cards, tokens = {}, {}

function load(args)
  local dir, tag = args[1], args[2]
  for line in io.lines(dir .. "/cards.txt") do cards[#cards + 1] = line end
  for line in io.lines(dir .. "/tokens.txt") do tokens[#tokens + 1] = line end
  math.randomseed(os.time() * 100 + tid)
  prefix = tag .. "-" .. tid .. "-"
  counter = 0
end

function card() return cards[math.random(#cards)] end

function headers()
  return {
    ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)],
    ["Content-Type"] = "application/json",
  }
end

function line()
  counter = counter + 1
  return string.format(
    '{"member":"%s","amount":1250,"currency":"EUR","external_id":"%s%d"}',
    card(), prefix, counter)
end
