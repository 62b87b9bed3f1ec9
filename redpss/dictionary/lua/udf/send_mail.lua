-- REDSYS.SEND_MAIL(mail_to, mail_subject, mail_body) -> the mail's id at SENDMAIL
-- mail_to: addresses separated by , or ; (or a JSON array). The reply comes once the mail is
-- spooled; SENDMAIL delivers it (and retries) on its own.
function run(ctx)
  local mail = {
    to = addresses(ctx.mail_to, "mail_to"),
    subject = opt(ctx.mail_subject),
    body = opt(ctx.mail_body) or "",
  }
  local result = check("SEND_MAIL", redpss.send_mail(conf(), mail))
  return result.id
end
