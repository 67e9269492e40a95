"""Errors of the deploy stage (all :class:`rprockit.errors.UserError`: exit 2)."""

from __future__ import annotations

from ..errors import TargetError, UserError
from ..ssh import (
    HostKeyMismatchError,
    HostKeyUnknownError,
    RemoteCommandError,
    TargetConnectionError,
)

__all__ = [
    "ArtifactError", "HostKeyMismatchError", "HostKeyUnknownError", "NothingToRollBackError",
    "PrecheckError", "ReloadError", "ReloadImpossibleError", "RemoteCommandError",
    "TargetConnectionError", "UploadError",
]


class ArtifactError(UserError):
    """A local artifact to deploy is missing or is not a kernel module."""


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
