--[[
udf_common: helpers shared by the REDSYS scripts of `redctl db scripts`. Inlined into every
script after the bundled client (`redpss`) and the line that names the CONNECTION object
(`REDPSS_CONNECTION`): an Exasol UDF cannot require files, only built-in modules like socket.

The CONNECTION's address is the JSON written by redctl (host, the four ports, jexec_timeout);
its password is the instance secret. Neither is a literal of the script text.
--]]

local json = redpss.json
local conf_cache

-- Exasol passes SQL NULL as the constant null (also NULL); plain Lua has neither
local function is_null(v)
  return v == nil or (null ~= nil and v == null) or (NULL ~= nil and v == NULL)
end

local function opt(v)
  if is_null(v) then return nil end
  return v
end

-- DECIMAL and INTEGER arguments arrive as Exasol's decimal type, not as Lua numbers
local function num(v, what)
  if is_null(v) then return nil end
  if type(v) == "number" then return v end
  local n = tonumber(tostring(v))
  if n == nil then error(what .. " is not a number: " .. tostring(v), 0) end
  return n
end

-- a DECIMAL result: Exasol's decimal() where it exists
local function dec(n)
  if decimal ~= nil then return decimal(n) end
  return n
end

local function conf()
  if conf_cache then return conf_cache end
  local c = exa.get_connection(REDPSS_CONNECTION)
  local address, err = json.decode(opt(c.address) or "")
  if type(address) ~= "table" or not address.host then
    error("connection " .. REDPSS_CONNECTION .. " does not hold the address that redctl db "
          .. "scripts writes: " .. tostring(err or "no host"), 0)
  end
  address.secret = opt(c.password)
  address.timeout = address.timeout or 30
  conf_cache = address
  return address
end

-- the result, or an SQL error naming the script, the error code and its message
local function check(what, result, err)
  if result == nil then
    err = err or {}
    error(what .. " failed: " .. tostring(err.code) .. ": " .. tostring(err.message), 0)
  end
  return result
end

-- a JSON text of the given type ("table" for arrays and objects), or nil for NULL / ''
local function decode_arg(text, what)
  text = opt(text)
  if text == nil or text:match("^%s*$") then return nil end
  local value, err = json.decode(text)
  if type(value) ~= "table" then
    error(what .. " is not a JSON array or object: " .. tostring(err or text), 0)
  end
  return value
end

-- "a@x.org, b@y.org; c@z.org" or a JSON array of addresses
local function addresses(text, what)
  text = opt(text)
  if text == nil then return nil end
  if text:match("^%s*%[") then return decode_arg(text, what) end
  local out = {}
  for part in text:gmatch("[^,;]+") do
    local address = part:match("^%s*(.-)%s*$")
    if address ~= "" then out[#out + 1] = address end
  end
  return out
end
