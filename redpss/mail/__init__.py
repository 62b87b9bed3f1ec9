"""Mail for the services of the database: composing, spooling and relaying.

A room of its own because three roles share it: SENDMAIL (spool and relay), SENDFILE (mails an
export through SENDMAIL) and MAIL2CMD (inbound). :mod:`redpss.mail.message` checks a mail request
and composes the RFC 5322 message, :mod:`redpss.mail.spool` keeps mails on disk through their
life (queue → inflight → sent, or dead), :mod:`redpss.mail.relay` hands one to the SMTP relay
with smtplib and says whether a failure is worth a retry. The role itself
(:mod:`redpss.roles.sendmail`) only joins them.
"""
