-- REDSYS.REDPSS_PING() -> JSON: for each service "ok" or why it cannot be reached
-- Checks the network path, the ports and the secret of the CONNECTION; fails only when the
-- CONNECTION cannot be read.
function run(ctx)
  local c = conf()
  local out = {}
  for _, service in ipairs({ "dbls", "sendmail", "jexec", "sendfile" }) do
    local client = redpss.connect(c.host, c[service .. "_port"], c)
    local result, err = client:call("ping")
    client:close()
    if result then out[service] = "ok"
    else out[service] = tostring(err.code) .. ": " .. tostring(err.message) end
  end
  return json.encode(out)
end
