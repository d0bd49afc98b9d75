local counter = 0

setup = function(thread)
  thread:set("tid", math.random(0, 2^30))
end
request = function()
  counter = counter + 1
  return wrk.format("POST", "/v1/services/r" .. (counter % 50) .. "/instances", {["Content-Type"]="application/json"},
    '{"id":"w' .. tid .. 'x' .. counter .. '","address":"127.0.0.1","port":8080}')
end
