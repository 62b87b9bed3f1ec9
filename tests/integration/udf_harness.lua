--[==[
udf_harness: runs the Lua text of one REDSYS script the way Exasol runs a Lua UDF, as far as
a plain lua5.1 / lua5.4 with LuaSocket can:

- globals null/NULL (SQL NULL), decimal() (Exasol's DECIMAL: userdata-like, not a Lua number,
  so tonumber() on it is nil), exa.meta and exa.get_connection(name) returning
  {type, address, user, password} of the one CONNECTION given;
- no files: require() yields only "socket", and io, dofile, loadfile are gone before the
  script's text is loaded;
- SCALAR: run(ctx) once per row, the row's values as ctx.<param>; SET: run(ctx) once per
  group, ctx.next() moving to the group's next row.

    lua udf_harness.lua call.json

call.json: {"name": "SEND_MAIL", "kind": "SCALAR"|"SET", "body": "<path of the Lua text>",
            "params": ["mail_to", ...], "decimal_params": ["cmd_time_limit"],
            "connection": {"name": …, "address": …, "user": …, "password": …},
            "groups": [[[value, …], …], …]}   -- SCALAR: every row of every group is one call
Prints one JSON line per run(ctx) call: {"ok": true, "result": …} or {"ok": false, "error": …}.
--]==]

local json = require("redpss_client").json -- the harness's own copy, not the script's
local socket = require("socket")

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local spec = assert(json.decode(slurp(arg[1])))
local body = slurp(spec.body)

NULL = setmetatable({}, { __tostring = function() return "NULL" end })
null = NULL

local Decimal = { __tostring = function(d) return d.text end }
Decimal.__index = { tonumber = function(d) return tonumber(d.text) end }
function decimal(value) return setmetatable({ text = tostring(value) }, Decimal) end

local conn = spec.connection
exa = {
  meta = { script_name = spec.name, script_schema = "REDSYS", script_language = _VERSION },
  get_connection = function(name)
    if name ~= conn.name then error("connection " .. tostring(name) .. " does not exist", 0) end
    return { type = "PASSWORD", address = conn.address, user = conn.user,
             password = conn.password }
  end,
}

-- what a UDF does not have: files and modules beyond the built-in ones
local allowed = { socket = socket }
require = function(name)
  if allowed[name] then return allowed[name] end
  error("module '" .. name .. "' not found: a UDF cannot load files", 2)
end
package.path, package.cpath = "", ""
io, dofile, loadfile = nil, nil, nil

local decimals = {}
for _, name in ipairs(spec.decimal_params or {}) do decimals[name] = true end

local function set_row(ctx, row)
  for i, name in ipairs(spec.params) do
    local v = row[i]
    if v == json.null or v == nil then v = NULL
    elseif decimals[name] then v = decimal(v) end
    ctx[name] = v
  end
end

local function report(ok, value)
  local out
  if ok then
    if value == nil or value == NULL then value = json.null
    elseif getmetatable(value) == Decimal then value = value.text end
    out = { ok = true, result = value }
  else
    out = { ok = false, error = tostring(value) }
  end
  print(json.encode(out))
end

-- the text runs once per VM before the first run(ctx): its errors are the statement's error
local chunk = assert((loadstring or load)(body, "=" .. spec.name))
local loaded, load_error = pcall(chunk)
if not loaded or type(run) ~= "function" then
  report(false, load_error or "the script defines no run(ctx)")
  return
end

for _, group in ipairs(spec.groups) do
  if spec.kind == "SET" then
    local ctx, i = {}, 1
    set_row(ctx, group[1])
    ctx.next = function()
      i = i + 1
      if group[i] == nil then return false end
      set_row(ctx, group[i])
      return true
    end
    report(pcall(run, ctx))
  else
    for _, row in ipairs(group) do
      local ctx = {}
      set_row(ctx, row)
      report(pcall(run, ctx))
    end
  end
end
