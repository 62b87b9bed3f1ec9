"""The outbound path of data: an export of a table or view written to a file and sent by sFTP.

SENDFILE (:mod:`redpss.roles.sendfile`) does three jobs; two of them live here, one noun per
module, so that the role stays a thin handler and loads the heavy libraries only when a request
needs them:

- :mod:`redpss.export.writer`: the rows, one batch at a time, into CSV (the csv module) or
  Parquet (:mod:`redpss.export.parquet`, pyarrow: imported only for a Parquet export);
- :mod:`redpss.export.sftp`: the one sFTP target of the configuration (paramiko: imported only
  when an export goes there);
- the third, handing the file to SENDMAIL, is a wire call in the role itself.

A room of its own, not part of ``landing/`` (inbound files) nor ``mail/`` (one of its two ways
out): what it shares with neither is the export file's life, written below ``tmp/sendfile``
and removed once delivered.
"""
