-- REDSYS.RUN_COMMAND(cmd_name, cmd_args, cmd_time_limit) -> the result of JEXEC as JSON
-- cmd_name: a path below $REDENV_HOME/cmd; cmd_args: a JSON array of strings (or NULL);
-- cmd_time_limit: seconds (NULL: jexec_timeout). Waits for the command. A command that ran
-- returns {"exit_code": …, "stdout": …, "stderr": …, "timed_out": …, …}, whatever its exit
-- code; a command that could not run (not_found, bad_args, …) is an SQL error.
function run(ctx)
  local c = conf()
  local args = decode_arg(ctx.cmd_args, "cmd_args") or {}
  local limit = num(ctx.cmd_time_limit, "cmd_time_limit") or c.jexec_timeout
  local result = check("RUN_COMMAND", redpss.run_command(c, opt(ctx.cmd_name), args, limit))
  return json.encode(result)
end
