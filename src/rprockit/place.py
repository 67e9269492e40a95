"""Boards from a labgrid coordinator: acquire a ``RemotePlace``, use it, release it.

A target file whose ``main`` target has a ``RemotePlace`` resource names a
board of the lab's shared pool (see :mod:`rprockit.target`).  Verify, deploy,
``verify --facts`` and ``diagnose --target`` take the place for the time they
need it, with labgrid's own client (``labgrid-client --place NAME acquire`` /
``release``, labgrid >= 24 over gRPC), and release it afterwards, also when the
work fails or is interrupted (:func:`acquired`).  While the place is held,
labgrid's ``RemotePlaceManager`` turns it into the exporter's resources:

* a ``NetworkService`` gives SSH access (rprockit's transport, with verified
  host keys; :func:`resolve` and :func:`resolve_on` read it);
* a ``NetworkSerialPort`` is the console, reached by the environment's
  ``SerialDriver`` + ``ShellDriver`` when the place exports no ``NetworkService``.

rprockit connects to the exported addresses directly: a place whose exporter
runs isolated (``labgrid-exporter -i``: every connection through an SSH proxy)
is refused with that reason.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import CommandError, UserError
from .runner import Runner
from .target import PlaceRef, TargetDesc, load_target, with_network_service

__all__ = ["PlaceError", "acquire", "acquired", "acquired_env", "release", "resolve",
           "resolve_on"]


class PlaceError(UserError):
    """The coordinator refused the place (unknown, taken by someone else, unreachable).

    Args:
        place: the place.
        action: ``acquire`` or ``release``.
        detail: labgrid-client's message.
    """

    def __init__(self, place: PlaceRef, action: str, detail: str):
        self.place = place
        hint = {
            "acquire": ("check the name with `labgrid-client -x {c} places`; a place "
                        "someone else holds is free again after `labgrid-client -x {c} "
                        "-p {p} release` by them (or `release --kick`)"),
            "release": "release it by hand: `labgrid-client -x {c} -p {p} release`",
        }[action].format(c=place.coordinator, p=place.name)
        super().__init__(f"cannot {action} {place}: {detail.strip() or 'no message'}; {hint}")


def _client(place: PlaceRef, *args: str) -> list[str]:
    """``labgrid-client`` of this interpreter's labgrid, with ``--opt=value`` arguments."""
    return [sys.executable, "-m", "labgrid.remote.client", f"--coordinator={place.coordinator}",
            f"--place={place.name}", *args]


def _detail(e: CommandError) -> str:
    lines = [ln for ln in str(e).splitlines() if "rror" in ln]
    return lines[-1] if lines else str(e)


def acquire(place: PlaceRef, runner: Runner | None = None) -> None:
    """Acquire the place for this host and user (``labgrid-client acquire``).

    Raises:
        PlaceError: the coordinator is unreachable, the place does not exist or is
            held (also by this user: a place is never taken twice).
    """
    try:
        (runner or Runner()).run(_client(place, "acquire"))
    except CommandError as e:
        raise PlaceError(place, "acquire", _detail(e)) from e


def release(place: PlaceRef, runner: Runner | None = None) -> None:
    """Release the place (``labgrid-client release``).

    Raises:
        PlaceError: the coordinator is unreachable or the place is not held by us.
    """
    try:
        (runner or Runner()).run(_client(place, "release"))
    except CommandError as e:
        raise PlaceError(place, "release", _detail(e)) from e


@contextlib.contextmanager
def acquired(desc: TargetDesc, runner: Runner | None = None,
             say: Callable[[str], None] = print) -> Iterator[TargetDesc]:
    """Hold the target's place for the ``with`` block; a target without one passes through.

    The place is released when the block ends, however it ends (an error, a
    failed suite, Ctrl-C).  A failure to release is reported on ``say`` and does
    not hide the block's own error.

    Args:
        desc: the target (:func:`rprockit.target.load_target`).
        runner: runs labgrid-client.
        say: one-line messages (acquired, released).

    Yields:
        ``desc`` unchanged (resolve the place's resources with :func:`resolve`).

    Raises:
        PlaceError: the place cannot be acquired.
    """
    place = desc.place
    if place is None:
        yield desc
        return
    runner = runner or Runner()
    acquire(place, runner)
    say(f"[{place.name}] acquired {place}")
    try:
        yield desc
    finally:
        try:
            release(place, runner)
            say(f"[{place.name}] released")
        except PlaceError as e:
            say(f"rprockit: WARNING: {e}")


@contextlib.contextmanager
def acquired_env(env_file: Path | str | None, runner: Runner | None = None,
                 say: Callable[[str], None] = print, role: str = "main") -> Iterator[None]:
    """:func:`acquired` for a labgrid environment file (no-op for None, a missing file or
    a target without a place).

    Raises:
        PlaceError: the place cannot be acquired.
        InvalidFileError: the file is not a valid target.
    """
    if env_file is None or not Path(env_file).is_file():
        yield
        return
    with acquired(load_target(env_file, role=role), runner, say):
        yield


def resolve_on(desc: TargetDesc, target: Any) -> TargetDesc:
    """SSH access of an acquired place from the labgrid ``Target`` that holds it.

    Args:
        desc: the ``remote`` target description.
        target: a labgrid ``Target`` with the ``RemotePlace`` (its resources expanded
            by labgrid's ``RemotePlaceManager``).

    Returns:
        ``desc`` with ``ssh`` set when the place exports a ``NetworkService``, else
        ``desc`` unchanged (the console is the way in).

    Raises:
        UserError: the exporter requires an SSH proxy.
        InvalidFileError: the exported service has no usable address or port.
    """
    if desc.place is None or desc.ssh is not None:
        return desc
    try:
        net = target.get_resource("NetworkService", wait_avail=False)
    except Exception:  # labgrid's NoResourceFoundError: the place has no SSH
        return desc
    if (getattr(net, "extra", None) or {}).get("proxy_required"):
        raise UserError(f"{desc.place}: its exporter requires an SSH proxy (labgrid-exporter "
                        "--isolated); rprockit connects to the exported NetworkService "
                        f"{net.address}:{net.port} directly: run the exporter without -i")
    return with_network_service(desc, net.address, net.port, net.username, net.password)


def resolve(desc: TargetDesc) -> TargetDesc:
    """SSH access of an acquired place, read through labgrid in this process.

    Raises:
        UserError: see :func:`resolve_on`; the place has no NetworkService (deploy
            needs SSH), or labgrid cannot reach the coordinator.
    """
    if desc.place is None:
        return desc
    from labgrid import Environment

    try:
        target = Environment(desc.source).get_target(desc.role)
    except Exception as e:  # labgrid's client errors for an unreachable coordinator
        raise UserError(f"{desc.place}: labgrid cannot load the place's resources: {e}") from e
    out = resolve_on(desc, target)
    if out.ssh is None:
        raise UserError(f"{desc.place} exports no NetworkService: deploy needs SSH; add a "
                        "NetworkService (address, username, port) to the exporter's group")
    return out
