-- REDSYS.LOG_BUFFER(log_schema, log_level, log_source, log_text) -> lines written (SET script)
-- The log buffer: every row of the group is one line; lines go to DBLS in few requests (one
-- per schema and source, at most FLUSH_AT lines each). Rows without text are skipped.
local FLUSH_AT = 10000

function run(ctx)
  local buffers, order, written = {}, {}, 0
  local function flush(buf)
    if #buf.lines == 0 then return end
    local result = check("LOG_BUFFER", redpss.log_lines(conf(), buf.schema, buf.lines, buf.source))
    written = written + result.written
    buf.lines = {}
  end
  repeat
    local text = opt(ctx.log_text)
    if text ~= nil then
      local schema, source = opt(ctx.log_schema) or "", opt(ctx.log_source)
      local key = schema .. "\0" .. (source or "")
      local buf = buffers[key]
      if buf == nil then
        buf = { schema = opt(ctx.log_schema), source = source, lines = {} }
        buffers[key] = buf
        order[#order + 1] = key
      end
      buf.lines[#buf.lines + 1] = { level = opt(ctx.log_level) or "INFO", message = text }
      if #buf.lines >= FLUSH_AT then flush(buf) end
    end
  until not ctx.next()
  for _, key in ipairs(order) do flush(buffers[key]) end
  return dec(written)
end
