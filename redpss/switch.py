"""The guide's instance switch: ``tst1`` opens the instance's shell, CTRL-D leaves it.

::

    [redsys@red1 ~]$ tst1
    ---------------------------------
    current environment: TST1
    exit with CTRL-D
    ---------------------------------
    TST1 [redsys@red01 tst1]$

``redsysctl shell tst1`` opens that shell: bash (``sh`` where there is none) with the user's
own ``~/.bashrc`` first, then ``REDHOME``, ``REDENV``, ``REDENV_HOME``, ``PATH`` with the
instance's ``bin/`` and ``$REDHOME/bin`` in front (so ``redctl`` is the instance's, of its
build, and ``redsysctl`` is on the path), the folder ``$REDENV_HOME`` and the prompt.
``redsysctl shell --install-alias`` writes ``$REDHOME/etc/aliases.sh`` (one alias per instance)
and loads it from ``~/.bashrc`` once, so that the instance's name is the command.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from redpss.instance import Instance, list_instances

__all__ = ["BANNER", "install_aliases", "open_shell", "rc_text"]

BANNER = "---------------------------------"
_MARK = "# RED-PSS instance switch (redsysctl shell --install-alias)"


def _env(inst: Instance) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the host tool's; the instance's tools set their own
    env.update(inst.environment())
    path = [str(inst.home / "bin"), str(inst.redhome / "bin")]
    rest = [p for p in env.get("PATH", os.defpath).split(":") if p and p not in path]
    env["PATH"] = ":".join(path + rest)
    return env


def rc_text(inst: Instance, *, bash: bool = True) -> str:
    """The start-up file of the instance's shell."""
    q = shlex.quote
    env = _env(inst)
    lines = ['[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"'] if bash else []
    lines += [f"export {k}={q(env[k])}" for k in ("REDHOME", "REDENV", "REDENV_HOME", "PATH")]
    lines.append("unset PYTHONPATH")
    lines.append(f"cd {q(str(inst.home))}")
    prompt = f"{inst.redenv} [\\u@\\h \\W]\\$ " if bash else f"{inst.redenv} $ "
    lines.append(f"PS1={q(prompt)}")
    for text in (BANNER, f"current environment: {inst.redenv}", "exit with CTRL-D", BANNER):
        lines.append(f"echo {q(text)}")
    return "\n".join(lines) + "\n"


def open_shell(inst: Instance) -> int:
    """Replace this process by the instance's interactive shell (returns only on failure)."""
    inst.require()
    bash = shutil.which("bash")
    rc = inst.tmp / "shell.rc"
    rc.parent.mkdir(parents=True, exist_ok=True)
    rc.write_text(rc_text(inst, bash=bash is not None), encoding="utf-8")
    env = _env(inst)
    if bash is not None:
        os.execve(bash, [bash, "--rcfile", str(rc), "-i"], env)
    sh = shutil.which("sh") or "/bin/sh"
    env["ENV"] = str(rc)  # what a POSIX sh reads when interactive
    os.execve(sh, [sh, "-i"], env)
    return 1  # not reached


def aliases_text(home: Path) -> str:
    """``$REDHOME/etc/aliases.sh``: ``alias tst1='…/bin/redsysctl shell tst1'`` per instance."""
    tool = shlex.quote(str(home / "bin" / "redsysctl"))
    lines = [f"{_MARK}: one alias per instance of {home}"]
    for inst in list_instances(home):
        lines.append(f"alias {inst.name}={shlex.quote(f'{tool} shell {inst.name}')}")
    return "\n".join(lines) + "\n"


def install_aliases(home: Path, *, bashrc: Path | None = None) -> list[str]:
    """Write the aliases file and source it from ``~/.bashrc`` (once); say what was done."""
    done = []
    path = home / "etc" / "aliases.sh"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(aliases_text(home), encoding="utf-8")
    names = [i.name for i in list_instances(home)]
    done.append(f"{path}: aliases {', '.join(names) or '(no instance yet)'}")
    rc = bashrc or Path.home() / ".bashrc"
    line = f"[ -f {shlex.quote(str(path))} ] && . {shlex.quote(str(path))}  {_MARK}"
    text = rc.read_text(encoding="utf-8") if rc.exists() else ""
    if str(path) in text and _MARK in text:
        done.append(f"{rc} loads it already")
    else:
        with rc.open("a", encoding="utf-8") as fh:
            fh.write(("" if not text or text.endswith("\n") else "\n") + line + "\n")
        done.append(f"{rc}: loads it from now on (in this shell: . {path})")
    return done
