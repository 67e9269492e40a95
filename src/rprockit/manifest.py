"""The build manifest ``<workspace>/<profile>/artifacts/manifest.json``, typed.

The build stage writes it (:func:`rprockit.build.build`); preflight, verify,
deploy and the on-target suite read it through :class:`Manifest`.  Its ``id``
is the first 16 hex digits of the sha256 of its ``inputs`` and ``outputs``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError

FILE_NAME = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """A build's manifest.

    Attributes:
        path: the ``manifest.json`` file; its directory holds the artifacts.
        id: 16 hex digits naming the build (inputs + outputs).
        profile: the profile name.
        kernel_release: ``make kernelrelease`` of the build (``6.1.0-rprockit``).
        arch: the kernel ``ARCH``.
        load_order: module names in load order (without ``.ko``).
        rproc_driver: the remoteproc driver module, or None.
        firmware_name: the M-core firmware file name under ``firmware/``, or None.
        firmware_soc: the SoC the firmware is for (``imx7d``), or None.
        board_dtb_name: the board DTB the target boots, relative to the artifacts
            (``dtbs/imx7d-rprockit-qemu.dtb``), or None.
        outputs: ``{artifact path: {"sha256": hex, "size": bytes}}``.
        data: the whole JSON document.
    """

    path: Path
    id: str
    profile: str
    kernel_release: str
    arch: str
    load_order: tuple[str, ...] = ()
    rproc_driver: str | None = None
    firmware_name: str | None = None
    firmware_soc: str | None = None
    board_dtb_name: str | None = None
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read ``path`` (a ``manifest.json`` or the artifacts directory holding it).

        Raises:
            UserError: no build there yet, or the file is not a manifest.
        """
        path = Path(path)
        if path.is_dir():
            path = path / FILE_NAME
        try:
            data = json.loads(path.read_text())
            modules = data.get("modules") or {}
            firmware = data.get("firmware") or {}
            return cls(path=path, id=data["id"], profile=data.get("profile", ""),
                       kernel_release=data["kernel_release"], arch=data.get("arch", ""),
                       load_order=tuple(modules.get("load_order") or ()),
                       rproc_driver=modules.get("rproc_driver"),
                       firmware_name=firmware.get("name"), firmware_soc=firmware.get("soc"),
                       board_dtb_name=data.get("board_dtb"),
                       outputs=dict(data.get("outputs") or {}), data=data)
        except FileNotFoundError:
            raise UserError(f"no build in {path.parent}: run the build stage first "
                            "(invoke build)") from None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserError(f"{path} is not a rprockit build manifest ({e}); "
                            "rebuild with: invoke build --force") from e

    @property
    def artifacts(self) -> Path:
        """The directory holding the artifacts (the manifest's directory)."""
        return self.path.parent

    @property
    def firmware(self) -> Path | None:
        """The M-core firmware ELF, or None when the build has none."""
        return self.artifacts / "firmware" / self.firmware_name if self.firmware_name else None

    @property
    def modules(self) -> tuple[Path, ...]:
        """The built ``.ko`` files, sorted."""
        return tuple(sorted((self.artifacts / "modules").glob("*.ko")))

    @property
    def dtbs(self) -> tuple[Path, ...]:
        """Every DTB of the build, sorted by name."""
        return tuple(sorted((self.artifacts / "dtbs").glob("*.dtb")))

    def board_dtb(self, board_dts: Iterable[Path] = ()) -> Path | None:
        """The DTB the board boots: the one the manifest names.

        Manifests written before they named it fall back to the first of the
        profile's ``build.board_dts`` that was built.

        Args:
            board_dts: the profile's board DT sources (for the fallback).

        Returns:
            The DTB path, or None when the build has no board DTB.
        """
        if self.board_dtb_name:
            return self.artifacts / self.board_dtb_name
        built = (self.artifacts / "dtbs" / f"{d.stem}.dtb" for d in board_dts)
        return next((d for d in built if d.is_file()), None)


def board_dtb_name(board_dts: Iterable[Path]) -> str | None:
    """What a new manifest records as ``board_dtb``: the first board DT source's DTB."""
    first = next(iter(board_dts), None)
    return f"dtbs/{first.stem}.dtb" if first is not None else None
