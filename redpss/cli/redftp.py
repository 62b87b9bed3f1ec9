"""``redftp_useradd`` and ``redftp_userdel``: the sFTP users of an instance in container mode.

``redftp_useradd <instance> <user> <pubkey-file>`` adds ``redftp_<instance>_<user>``: the next
free UID of 1200-1299 (across all instances of ``$REDHOME``: one server has at most 100 sFTP
users), its public key, and an entry in ``$REDENV_HOME/etc/redftp/users``; a running sftp
container is then re-created with the user (chroot ``/app/redftp/env/<instance>``, shared by
the instance's users; uploads into ``input/`` = the instance's ``data/input``).
``redftp_userdel <instance> <user>`` removes the user the same way. Sessions of other users on
that container are cut by the re-creation (a second or two); clients reconnect.

Each run leaves one line in the instance's ``log/audit.log`` (``redctl audit``), refusals too.

Exit codes: 0 done, 1 refused (bad name or key, duplicate, unknown user, no free UID, instance
not in container mode, container failed), 2 usage.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from redpss import audit, compose
from redpss.cli.common import ArgumentParser, emit, entry, fail, guarded, json_mode
from redpss.errors import InstanceError
from redpss.instance import Instance, list_instances, redhome, resolve_instance

__all__ = ["UID_FIRST", "UID_LAST", "useradd_main", "userdel_main"]

UID_FIRST = 1200
UID_LAST = 1299
USER_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
# Linux user names: at most 32 characters
MAX_LOGIN = 32
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def login_name(inst: Instance, user: str) -> str:
    """The OS user of an sFTP user: ``redftp_<instance>_<user>``."""
    return f"redftp_{inst.name}_{user}"


def check_user(inst: Instance, user: str) -> str:
    """``user`` if it is a valid user part for the instance, else :class:`InstanceError`."""
    if not USER_RE.match(user):
        raise InstanceError(
            f"bad sFTP user name {user!r}: a lower-case letter, then up to 15 letters or digits"
        )
    if len(login_name(inst, user)) > MAX_LOGIN:
        raise InstanceError(f"{login_name(inst, user)!r} is longer than {MAX_LOGIN} characters")
    return user


def read_public_key(path: Path) -> str:
    """The one OpenSSH public key line of ``path``; anything else is an :class:`InstanceError`."""
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InstanceError(f"cannot read public key {path}: {exc}") from exc
    if len(lines) != 1:
        raise InstanceError(f"{path}: expected exactly one public key line")
    parts = lines[0].split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise InstanceError(f"{path}: not an OpenSSH public key (types: {', '.join(KEY_TYPES)})")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except binascii.Error as exc:
        raise InstanceError(f"{path}: the key is not valid base64") from exc
    if parts[0].encode() not in blob[:64]:
        raise InstanceError(f"{path}: the key's body does not match its type {parts[0]}")
    return " ".join(parts[:2]) + "\n"


def _used_uids(home: Path) -> set[int]:
    return {uid for inst in list_instances(home) for uid in compose.read_users(inst).values()}


def _write_users(inst: Instance, users: dict[str, int]) -> None:
    path = inst.etc / compose.SFTP_ETC / "users"
    lines = ["# sFTP users of this instance: <user> <uid> (redftp_useradd / redftp_userdel)"]
    lines += [f"{user} {uid}" for user, uid in sorted(users.items())]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def _apply(inst: Instance) -> int:
    """Re-create a running sftp container with the current users (no-op when it is down)."""
    state = compose.service_states(inst).get("sftp")
    if state is None or state.state != "running":
        return 0
    # the compose file does not change with the users: the entrypoint reads them at start
    proc = compose.run(
        inst, "up", "--detach", "--no-deps", "--force-recreate", "--wait", "sftp", capture=True
    )
    if proc.returncode != 0:
        return fail(f"the sftp container did not come back: {proc.stderr.decode().strip()}")
    return 0


def _instance(name: str) -> Instance:
    inst = resolve_instance(name, home=redhome()).require()
    if not compose.is_compose(inst):
        raise InstanceError(
            f"instance {inst.name} is not in container mode (redsysctl compose {inst.name})"
        )
    (inst.etc / compose.SFTP_ETC).mkdir(exist_ok=True)
    return inst


def add_user(name: str, user: str, key_file: Path) -> int:
    """Add the sFTP user; see the module docstring."""
    inst = _instance(name)
    check_user(inst, user)
    key = read_public_key(key_file)
    users = compose.read_users(inst)
    if user in users:
        return fail(f"sFTP user {login_name(inst, user)} exists already (uid {users[user]})")
    used = _used_uids(redhome())
    free = [uid for uid in range(UID_FIRST, UID_LAST + 1) if uid not in used]
    if not free:
        return fail(f"no free UID in {UID_FIRST}-{UID_LAST}")
    (inst.etc / compose.SFTP_ETC / f"{user}.pub").write_text(key)
    users[user] = free[0]
    _write_users(inst, users)
    code = _apply(inst)
    if code == 0:
        login = login_name(inst, user)
        emit(json_mode(), {"instance": inst.name, "user": login, "uid": free[0], "added": True},
             f"sFTP user {login} added (uid {free[0]})")  # fmt: skip
    return code


def del_user(name: str, user: str) -> int:
    """Remove the sFTP user; see the module docstring."""
    inst = _instance(name)
    users = compose.read_users(inst)
    if user not in users:
        return fail(f"no sFTP user {user!r} in instance {inst.name}")
    del users[user]
    _write_users(inst, users)
    (inst.etc / compose.SFTP_ETC / f"{user}.pub").unlink(missing_ok=True)
    code = _apply(inst)
    if code == 0:
        login = login_name(inst, user)
        emit(json_mode(), {"instance": inst.name, "user": login, "removed": True},
             f"sFTP user {login} removed")  # fmt: skip
    return code


def useradd_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``redftp_useradd``."""
    return entry(argv, _useradd)


def _useradd(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="redftp_useradd", description="add an sFTP user to an instance in container mode"
    )
    parser.add_argument("instance")
    parser.add_argument("user", help="the user part of redftp_<instance>_<user>")
    parser.add_argument("pubkey", type=Path, help="file with the user's OpenSSH public key")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    args = parser.parse_args(argv)
    return guarded(
        lambda: _audited(
            "redftp_useradd",
            args.instance,
            argv,
            lambda: add_user(args.instance, args.user, args.pubkey),
        )
    )


def userdel_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``redftp_userdel``."""
    return entry(argv, _userdel)


def _userdel(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="redftp_userdel", description="remove an sFTP user of an instance in container mode"
    )
    parser.add_argument("instance")
    parser.add_argument("user", help="the user part of redftp_<instance>_<user>")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    args = parser.parse_args(argv)
    return guarded(
        lambda: _audited(
            "redftp_userdel", args.instance, argv, lambda: del_user(args.instance, args.user)
        )
    )


def _audited(tool: str, name: str, argv: list[str], action: Callable[[], int]) -> int:
    """Run ``action`` with its line in the instance's ``log/audit.log`` (none for an instance
    that does not exist: the action says so)."""
    try:
        log_dir: Path | None = resolve_instance(name, home=redhome()).log_dir
    except InstanceError:
        log_dir = None
    if log_dir is not None and not log_dir.is_dir():
        log_dir = None
    command = tool.removeprefix("redftp_")
    return audit.audited(log_dir, tool=tool, command=command, args=argv, action=action)


if __name__ == "__main__":
    sys.exit(useradd_main())
