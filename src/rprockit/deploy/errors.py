"""Errors of the deploy stage (all :class:`rprockit.errors.UserError`: exit 2)."""

from __future__ import annotations

from ..errors import TargetError, UserError


class ArtifactError(UserError):
    """A local artifact to deploy is missing or is not a kernel module."""


class HostKeyUnknownError(TargetError):
    """The target's SSH host key is not in known_hosts (nothing was sent)."""

    def __init__(self, host: str, key_type: str, fingerprint: str, known_hosts: list[str]):
        self.host = host
        self.fingerprint = fingerprint
        files = ", ".join(known_hosts) or "~/.ssh/known_hosts"
        super().__init__(
            f"the SSH host key of {host} ({key_type} {fingerprint}) is not in {files}; "
            "nothing was sent to it. Check the fingerprint on the target's console "
            "(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub, or dropbearkey -y -f ...), then "
            "either add it (ssh once interactively, or ssh-keyscan) or rerun with "
            "--accept-new-host-key to record it.")


class HostKeyMismatchError(TargetError):
    """The target presented a host key different from the recorded one."""

    def __init__(self, host: str, key_type: str, fingerprint: str, expected: str):
        self.host = host
        super().__init__(
            f"the SSH host key of {host} has CHANGED: it presents {key_type} {fingerprint}, "
            f"known_hosts records {expected}. This is refused even with "
            "--accept-new-host-key. If the board was reinstalled, remove the old entry "
            f"with: ssh-keygen -R '{host}'")


class TargetConnectionError(TargetError):
    """The target could not be reached, refused authentication or dropped the link."""


class RemoteCommandError(TargetError):
    """A command on the target exited non-zero."""

    def __init__(self, where: str, cmd: str, returncode: int, output: str, hint: str = ""):
        self.cmd = cmd
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-20:])
        hint = f"\n{hint}" if hint else ""
        super().__init__(f"on {where}: command failed with exit code {returncode}: {cmd}\n"
                         f"--- target output ---\n{tail}{hint}")


class PrecheckError(TargetError):
    """Pre-deploy checks failed; the target was not changed.

    Attributes:
        problems: one message per failed check.
        forceable: True when every problem is one that ``--force`` overrides.
    """

    def __init__(self, where: str, problems: list[str], forceable: bool):
        self.problems = problems
        self.forceable = forceable
        extra = (" Rerun with --force to deploy anyway (recorded in the deploy record)."
                 if forceable else "")
        super().__init__(f"deploy to {where} refused, nothing was changed:\n  - "
                         + "\n  - ".join(problems) + extra)


class UploadError(TargetError):
    """The upload to the staging directory failed; installed files are unchanged."""


class ReloadImpossibleError(TargetError):
    """A module of the set is built into the target's kernel and cannot be unloaded."""


class ReloadError(TargetError):
    """A reload step failed; the files were rolled back.

    Attributes:
        step: description of the failed step.
        dmesg_tail: the last lines of the target's kernel log.
    """

    def __init__(self, where: str, step: str, cause: str, dmesg_tail: str, rolled_back: str):
        self.step = step
        self.dmesg_tail = dmesg_tail
        super().__init__(f"reload on {where} failed at step: {step}\n{cause.strip()}\n"
                         f"{rolled_back}\n--- target dmesg (tail) ---\n{dmesg_tail.rstrip()}")


class NothingToRollBackError(TargetError):
    """The target has no backup set to restore."""
