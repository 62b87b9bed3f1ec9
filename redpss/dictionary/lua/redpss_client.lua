--[[
redpss_client: what a Lua script inside Exasol calls to reach the services of its redpss
instance (DBLS, SENDMAIL, JEXEC, SENDFILE). It speaks the wire protocol of docs/protocol.md
(one JSON object per line over TCP) with nothing but LuaSocket, and runs on Lua 5.1 (Exasol)
as well as 5.4.

    local redpss = require("redpss_client")
    local conf = { host = "10.0.0.5", secret = "...", dbls_port = 41003, jexec_port = 41004,
                   sendmail_port = 41001, sendfile_port = 41002, timeout = 10 }

    local buf = redpss.log_buffer(conf, "STAGE", "LOAD_SALES")
    buf:add("INFO", "started")
    buf:add("ERROR", "no file")          -- also lands in STAGE.LOG_MESSAGES
    local res, err = buf:flush()         -- acknowledged once the lines are on disk

    local res, err = redpss.send_mail(conf, { to = {"ops@example.com"}, subject = "done",
                                              body = "rows: 12", key = "LOAD_SALES/4711" })
    local res, err = redpss.run_command(conf, "export.sh", {"SALES"}, 600)
    local res, err = redpss.send_file(conf, { ... })   -- the op of the sendfile role

Every function returns the result table, or nil and an error table {code=, message=} (codes
of docs/protocol.md, plus "connect" and "io" for network failures). Nothing raises.
The JSON coder is included (redpss.json) so that no C module beyond LuaSocket is needed.
--]]

local socket = require("socket")

local M = { VERSION = "1" }

---------------------------------------------------------------------------------- JSON
local json = {}
M.json = json

json.null = setmetatable({}, { __tostring = function() return "null" end })
json.empty_array = setmetatable({}, { __tostring = function() return "[]" end })

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k ~= math.floor(k) then return false end
    n = n + 1
  end
  for i = 1, n do if t[i] == nil then return false end end
  return n > 0, n
end

local encode

local function encode_number(v)
  if v ~= v or v == math.huge or v == -math.huge then error("cannot encode " .. tostring(v)) end
  if v == math.floor(v) and math.abs(v) < 2^53 then return string.format("%d", v) end
  return string.format("%.17g", v)
end

encode = function(v, depth)
  depth = depth or 0
  if depth > 100 then error("nesting too deep") end
  local kind = type(v)
  if v == nil or v == json.null then return "null"
  elseif v == json.empty_array then return "[]"
  elseif kind == "boolean" then return tostring(v)
  elseif kind == "number" then return encode_number(v)
  elseif kind == "string" then return encode_string(v)
  elseif kind == "table" then
    local arr, n = is_array(v)
    local parts = {}
    if arr then
      for i = 1, n do parts[i] = encode(v[i], depth + 1) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    for k, item in pairs(v) do
      if type(k) ~= "string" then error("object keys must be strings") end
      parts[#parts + 1] = encode_string(k) .. ":" .. encode(item, depth + 1)
    end
    table.sort(parts)
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("cannot encode a " .. kind)
end

function json.encode(v) return encode(v, 0) end

local function utf8_char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64,
                       0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
                     0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

local decode_value

local function skip(s, i) return s:find("[^ \t\r\n]", i) or #s + 1 end

local function decode_string(s, i)
  local out, j = {}, i + 1
  while true do
    local c = s:sub(j, j)
    if c == "" then error("unterminated string") end
    if c == '"' then return table.concat(out), j + 1 end
    if c == "\\" then
      local e = s:sub(j + 1, j + 1)
      local simple = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
                       ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
      if simple[e] then out[#out + 1] = simple[e]; j = j + 2
      elseif e == "u" then
        local cp = tonumber(s:sub(j + 2, j + 5), 16)
        if not cp then error("bad \\u escape") end
        j = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF and s:sub(j, j + 1) == "\\u" then
          local lo = tonumber(s:sub(j + 2, j + 5), 16)
          if lo and lo >= 0xDC00 and lo <= 0xDFFF then
            cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
            j = j + 6
          end
        end
        out[#out + 1] = utf8_char(cp)
      else error("bad escape \\" .. e) end
    else
      local k = s:find('["\\]', j) or #s + 1
      out[#out + 1] = s:sub(j, k - 1)
      j = k
    end
  end
end

decode_value = function(s, i)
  i = skip(s, i)
  local c = s:sub(i, i)
  if c == "{" then
    local obj = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "}" then return obj, i + 1 end
    while true do
      if s:sub(i, i) ~= '"' then error("expected a key at " .. i) end
      local key
      key, i = decode_string(s, i)
      i = skip(s, i)
      if s:sub(i, i) ~= ":" then error("expected ':' at " .. i) end
      local val
      val, i = decode_value(s, i + 1)
      if val ~= json.null then obj[key] = val end
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "}" then return obj, i + 1 end
      if d ~= "," then error("expected ',' or '}' at " .. i) end
      i = skip(s, i + 1)
    end
  elseif c == "[" then
    local arr, n = {}, 0
    i = skip(s, i + 1)
    if s:sub(i, i) == "]" then return arr, i + 1 end
    while true do
      local val
      val, i = decode_value(s, i)
      n = n + 1
      arr[n] = val
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "]" then return arr, i + 1 end
      if d ~= "," then error("expected ',' or ']' at " .. i) end
      i = i + 1
    end
  elseif c == '"' then return decode_string(s, i)
  elseif s:sub(i, i + 3) == "true" then return true, i + 4
  elseif s:sub(i, i + 4) == "false" then return false, i + 5
  elseif s:sub(i, i + 3) == "null" then return json.null, i + 4
  else
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if not num or num == "" then error("unexpected '" .. c .. "' at " .. i) end
    return tonumber(num), i + #num
  end
end

function json.decode(s)
  local ok, value, i = pcall(decode_value, s, 1)
  if not ok then return nil, value end
  if skip(s, i) <= #s then return nil, "trailing data" end
  return value
end

---------------------------------------------------------------------------------- client
local Client = {}
Client.__index = Client

--- A client keeping one connection to host:port; reconnects when it was lost.
function M.connect(host, port, opts)
  opts = opts or {}
  return setmetatable({ host = host, port = port, secret = opts.secret,
                        timeout = opts.timeout or 10, next_id = 1 }, Client)
end

function Client:close()
  if self.conn then self.conn:close(); self.conn = nil end
end

function Client:_open()
  if self.conn then return true end
  local conn, err = socket.connect(self.host, self.port)
  if not conn then
    return nil, { code = "connect", message = "cannot connect to " .. self.host .. ":"
                  .. tostring(self.port) .. ": " .. tostring(err) }
  end
  conn:settimeout(self.timeout)
  self.conn = conn
  return true
end

--- Call op with the table args; returns the result, or nil and {code=, message=}.
function Client:call(op, args)
  local ok, err = self:_open()
  if not ok then return nil, err end
  local id = self.next_id
  self.next_id = id + 1
  local request = { id = id, op = op, args = args or {} }
  local encoded_ok, line = pcall(json.encode, request)
  if not encoded_ok then return nil, { code = "bad_args", message = tostring(line) } end
  if self.secret and self.secret ~= "" then
    -- the secret goes first: a server reads only a request's first 64 KiB before it trusts it
    line = '{"secret":' .. encode_string(self.secret) .. "," .. line:sub(2)
  end
  local sent, serr = self.conn:send(line .. "\n")
  if not sent then
    self:close()
    return nil, { code = "io", message = "send failed: " .. tostring(serr) }
  end
  local reply_line, rerr = self.conn:receive("*l")
  if not reply_line then
    self:close()
    return nil, { code = "io", message = "no reply: " .. tostring(rerr) }
  end
  local reply, derr = json.decode(reply_line)
  if type(reply) ~= "table" then
    self:close()
    return nil, { code = "io", message = "reply is not JSON: " .. tostring(derr) }
  end
  if reply.ok then return reply.result end
  local e = type(reply.error) == "table" and reply.error or {}
  return nil, { code = e.code or "unknown", message = e.message or "" }
end

local function one_call(conf, port_key, op, args)
  local port = conf[port_key]
  if not port then return nil, { code = "bad_args", message = "conf." .. port_key .. " missing" } end
  local c = M.connect(conf.host or "127.0.0.1", port, conf)
  local result, err = c:call(op, args)
  c:close()
  return result, err
end

---------------------------------------------------------------------------------- services
local Buffer = {}
Buffer.__index = Buffer

--- A log buffer for schema: add lines, flush them to DBLS in one request.
function M.log_buffer(conf, schema, source)
  return setmetatable({ conf = conf, schema = schema, source = source, lines = {} }, Buffer)
end

function Buffer:add(level, message)
  self.lines[#self.lines + 1] = { level = level, message = message }
end

function Buffer:flush()
  if #self.lines == 0 then return { written = 0 } end
  local result, err = one_call(self.conf, "dbls_port", "log",
                               { schema = self.schema, source = self.source, lines = self.lines })
  if result then self.lines = {} end
  return result, err
end

--- Send lines (strings or {level=, message=}) for schema to DBLS at once.
function M.log_lines(conf, schema, lines, source)
  return one_call(conf, "dbls_port", "log", { schema = schema, source = source, lines = lines })
end

--- Spool a mail at SENDMAIL (to, cc, bcc, subject, body, html, attachments, key).
function M.send_mail(conf, mail)
  return one_call(conf, "sendmail_port", "send", mail)
end

--- Run a command of $REDENV_HOME/cmd through JEXEC; waits for it (time_limit seconds).
function M.run_command(conf, command, args, time_limit)
  local c = M.connect(conf.host or "127.0.0.1", conf.jexec_port, conf)
  if time_limit then c.timeout = time_limit + 10 end
  local request = { command = command, args = args or json.empty_array, time_limit = time_limit }
  if args and #args == 0 then request.args = json.empty_array end
  local result, err = c:call("run", request)
  c:close()
  return result, err
end

--- Ask SENDFILE to export a table or view and send it (see docs/protocol.md, sendfile).
function M.send_file(conf, spec)
  return one_call(conf, "sendfile_port", "send", spec)
end

return M
