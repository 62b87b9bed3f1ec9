"""One exception tree for redpss.

::

    RedpssError                     base of everything redpss raises on purpose
    ├── ConfigError                 red_params.conf is unreadable, has an unknown key, a bad
    │                               value or misses a required one (names file, line, key)
    ├── InstanceError               an instance name is bad, missing or already exists
    ├── DictionaryError             the dictionary backend failed (sqlite3, pyexasol … chained)
    │   └── MigrationError          the dictionary could not be created or upgraded
    ├── WireError                   the internal protocol failed
    │   ├── ProtocolError           a malformed frame or reply
    │   ├── RemoteError             the peer answered with an error reply (has .code)
    │   │   └── BadArgs             code bad_args: the caller's arguments are wrong (names the
    │   │                           field); raised by a server's op, or parsing its request
    │   └── ServiceUnavailable      nothing answers at that address, or it timed out
    ├── SupervisorError             the instance's supervisord could not be started or reached
    ├── MailError                   a mail could not be handed to the relay (smtplib chained);
    │                               .permanent says whether a retry can help
    ├── LoadError                   a LOAD run as a whole failed (loader unknown, target
    │   │                           table unusable, dictionary away, every file rejected)
    │   └── FileRejected            one file cannot be loaded or converted (goes to error/;
    │                               has .line and .byte when known)
    ├── DefinitionsError            a definitions file (redctl db apply) is refused (names
    │                               file, table and key)
    ├── DefinitionError             one job or watcher definition cannot be scheduled (names
    │                               the job or watcher and the field)
    ├── NotFound                    a job, watcher or loader name that does not exist (lists
    │                               the nearest names)
    └── RoleError                   a role is unknown or could not start

Backend errors are translated once, at the boundary where they occur, and chained with ``from``.
A module may define a narrower error of its own (``PrecloneError``, ``UnknownKey`` …) as a
subclass of one of these; every public exception class of redpss is in this tree
(``tests/unit/test_errors.py``).
"""

from __future__ import annotations


class RedpssError(Exception):
    """Base class of every error redpss raises on purpose."""


class ConfigError(RedpssError):
    """A configuration file is unreadable or wrong; the message names file, line and key."""


class InstanceError(RedpssError):
    """An instance name is invalid, or the instance is missing or already exists."""


class DictionaryError(RedpssError):
    """The dictionary backend failed."""


class MigrationError(DictionaryError):
    """The dictionary objects could not be created or upgraded."""


class WireError(RedpssError):
    """The internal protocol failed."""


class ProtocolError(WireError):
    """A frame or reply is malformed."""


class RemoteError(WireError):
    """The peer answered with an error reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class BadArgs(RemoteError):
    """The caller's arguments are wrong (reply code ``bad_args``); the message names the field.

    Only for the caller's mistakes: anything else failing inside an op is a server error.
    """

    def __init__(self, message: str) -> None:
        super().__init__("bad_args", message)


class ServiceUnavailable(WireError):
    """Nothing answers at the address, or the peer did not answer in time."""


class SupervisorError(RedpssError):
    """The instance's supervisord could not be started, reached or commanded."""


class MailError(RedpssError):
    """A mail could not be handed to the relay; ``permanent`` is False when a retry may help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class LoadError(RedpssError):
    """A LOAD run as a whole failed; single bad files are FileRejected and go to error/."""


class FileRejected(LoadError):
    """One file cannot be loaded or converted; ``line``/``byte`` locate the problem if known."""

    def __init__(self, reason: str, *, line: int | None = None, byte: int | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(where + reason)
        self.reason = reason
        self.line = line
        self.byte = byte


class DefinitionsError(RedpssError):
    """A job/watcher/loader definitions file is refused; nothing was changed."""


class DefinitionError(RedpssError):
    """A job or watcher definition cannot be scheduled; the message names what is wrong."""


class NotFound(RedpssError):
    """A job, watcher or loader name that does not exist; the message lists the nearest names."""


class RoleError(RedpssError):
    """A role is unknown or could not start."""
