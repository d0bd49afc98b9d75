-- wrk script: heartbeat the 10,000 instances i0..i9999 of services s0..s49
-- that `etcdload -mode prereg` registered, each thread from a random start.
local counter = 0
local n = 10000
init = function(args)
  math.randomseed(os.time())
  counter = math.random(0, n - 1)
end
request = function()
  counter = (counter + 1) % n
  return wrk.format("PUT", "/v1/services/s" .. (counter % 50) .. "/instances/i" .. counter .. "/heartbeat")
end
