"""Deploy stage: install modules and firmware on a target over SSH, reload them.

Public API::

    deploy(target, artifacts, *, force=False, reload=False, accept_new_host_key=False,
           runner=None, transport=None, progress=None) -> DeployResult
    rollback(target, *, reload=False, accept_new_host_key=False, runner=None,
             transport=None) -> DeployResult

``target`` comes from :func:`rprockit.target.load_target`; ``artifacts`` is a
:class:`DeployArtifacts` of plain values taken from the build manifest.
"""

from .api import DeployResult, ProgressEvent, deploy, open_transport, rollback
from .artifacts import DeployArtifacts, module_name
from .errors import (
    ArtifactError,
    HostKeyMismatchError,
    HostKeyUnknownError,
    NothingToRollBackError,
    PrecheckError,
    ReloadError,
    ReloadImpossibleError,
    RemoteCommandError,
    TargetConnectionError,
    UploadError,
)
from .reload import ModuleState, ReloadStep, RprocInfo, classify_modules, plan_reload
from ..ssh import SSHTransport

__all__ = [
    "ArtifactError", "DeployArtifacts", "DeployResult", "HostKeyMismatchError",
    "HostKeyUnknownError", "ModuleState", "NothingToRollBackError", "PrecheckError",
    "ProgressEvent", "ReloadError", "ReloadImpossibleError", "ReloadStep",
    "RemoteCommandError", "RprocInfo", "SSHTransport", "TargetConnectionError",
    "UploadError", "classify_modules", "deploy", "module_name", "open_transport",
    "plan_reload", "rollback",
]
