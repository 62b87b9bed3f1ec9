-- REDSYS.LOG_MESSAGE(log_schema, log_level, log_source, log_text) -> lines written (1)
-- One line to log/DB/<SCHEMA>/ through DBLS; ERROR and ALERT lines also reach
-- <SCHEMA>.LOG_MESSAGES. Acknowledged once the line is on disk.
function run(ctx)
  local line = { level = opt(ctx.log_level) or "INFO", message = opt(ctx.log_text) or "" }
  local result = check("LOG_MESSAGE",
                       redpss.log_lines(conf(), opt(ctx.log_schema), { line }, opt(ctx.log_source)))
  return dec(result.written)
end
