-- REDSYS.SEND_FILE(file_schema, file_object, file_options) -> the result of SENDFILE as JSON
-- file_options: a JSON object with the other arguments of SENDFILE's send op (mail or sftp,
-- format, columns, where, file_name, …). Waits until the file is delivered.
local EXPORT_TIMEOUT = 3600  -- seconds: an export may take long; the call waits for it

function run(ctx)
  local spec = decode_arg(ctx.file_options, "file_options") or {}
  spec.schema = opt(ctx.file_schema)
  spec.object = opt(ctx.file_object)
  local c = {}
  for k, v in pairs(conf()) do c[k] = v end
  c.timeout = EXPORT_TIMEOUT
  local result = check("SEND_FILE", redpss.send_file(c, spec))
  return json.encode(result)
end
