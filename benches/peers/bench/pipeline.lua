-- wrk script: each request is 16 GETs of the path pipelined in one write
-- (TechEmpower's plaintext test). usage: wrk -s pipeline.lua URL
local depth = 16
init = function(args)
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil) end
  req = table.concat(r)
end
request = function() return req end
