-- wrk script: register a new instance per request, spread over 50 services
-- (r0..r49), each with a TTL of an hour as etcdload's leases have, so that
-- no expiry of an earlier run's instances weighs on a later run. Ids are
-- unique across threads and runs: the wall clock at setup, the thread
-- number and a counter.
local threads = 0
local stamp = os.time()
setup = function(thread)
  threads = threads + 1
  thread:set("tid", stamp .. "t" .. threads)
end
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/v1/services/r" .. (counter % 50) .. "/instances",
    {["Content-Type"] = "application/json"},
    '{"id":"w' .. tid .. 'x' .. counter .. '","address":"127.0.0.1","port":8080,"ttl":"1h"}')
end
