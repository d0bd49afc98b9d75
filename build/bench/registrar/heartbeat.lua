local counter = 0
local n = 10000
init = function(args)
  counter = math.random(0, n-1)
end
request = function()
  counter = (counter + 1) % n
  return wrk.format("PUT", "/v1/services/s" .. (counter % 50) .. "/instances/i" .. counter .. "/heartbeat")
end
