"""The emulated boards' userland is built from Debian's source packages, static.

busybox (every board) and dropbear (the SSH image) come from ``apt-get source``
with the Debian cross compilers (``rprockit.initramfs.build_from_source``), so
the images need no ``:armhf``/``:arm64`` package.  What is checked here, on the
real binaries in the machine cache (built on first use, about a minute for
busybox and 20 s for dropbear per architecture; dropbear for arm64 serves the
i.MX8M Plus board brought up with SSH by ``rprockit.board``):

* each is an ELF of the board's machine with no ``PT_INTERP`` and no
  ``DT_NEEDED`` (statically linked: nothing of the target's libc is needed);
* dropbear's SSH identification string (sysoptions.h ``LOCAL_IDENT``,
  ``"SSH-2.0-dropbear_" DROPBEAR_VERSION``) names the upstream version of the
  source package apt names (``SSH-2.0-dropbear_2022.83`` for Debian's
  ``2022.83-1+deb12u3``);
* the SSH image holds the server and no shared library.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

from rprockit.initramfs import (
    DROPBEAR,
    InitramfsError,
    SSHAccess,
    busybox,
    dropbear,
    generate_host_key,
    make_initramfs,
    source_version,
)
from rprockit.runner import Runner

#: e_machine of each kernel ARCH (ELF for the Arm Architecture: EM_ARM 40,
#: EM_AARCH64 183; pyelftools names).
MACHINE = {"arm": "EM_ARM", "arm64": "EM_AARCH64"}


def static_elf_facts(path: Path) -> tuple[str, str | None, list[str]]:
    """``(e_machine, PT_INTERP, DT_NEEDED names)`` of an ELF file."""
    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        interp = next((s.get_interp_name() for s in elf.iter_segments()
                       if isinstance(s, InterpSegment)), None)
        needed = [t.needed for s in elf.iter_sections() if isinstance(s, DynamicSection)
                  for t in s.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        return elf["e_machine"], interp, needed


def test_unknown_source_package_names_the_fix():
    with pytest.raises(InitramfsError, match=r"deb-src entry.*setup\.sh"):
        source_version("rprockit-no-such-source-package", Runner())


@pytest.mark.slow
@pytest.mark.parametrize(("program", "arch"), [("busybox", "arm"), ("busybox", "arm64"),
                                               ("dropbear", "arm"), ("dropbear", "arm64")])
def test_board_programs_are_static(program, arch):
    binary = {"busybox": busybox, "dropbear": dropbear}[program](arch)
    machine, interp, needed = static_elf_facts(binary)
    assert machine == MACHINE[arch], f"{binary}: built for {machine}, not {arch}"
    assert interp is None, f"{binary}: dynamically linked (interpreter {interp})"
    assert needed == [], f"{binary}: needs shared libraries {needed}"


@pytest.mark.slow
def test_dropbear_is_the_source_package_version():
    binary = dropbear("arm")
    upstream = source_version("dropbear", Runner()).split(":")[-1].rsplit("-", 1)[0]
    ident = f"SSH-2.0-dropbear_{upstream}".encode()
    assert ident in binary.read_bytes(), f"{binary}: no {ident!r}"



@pytest.mark.slow
def test_ssh_image_has_the_server_and_no_shared_library(tmp_path):
    runner = Runner()
    generate_host_key(tmp_path / "host_ed25519", runner)
    cpio = make_initramfs("arm", "6.1.0-test", [], [], tmp_path / "initramfs.cpio", 1,
                          runner, ssh=SSHAccess(tmp_path / "host_ed25519",
                                                "ssh-ed25519 AAAAC3Nz test@host"))
    names = subprocess.run(["cpio", "-t", "--quiet"], input=cpio.read_bytes(),
                           capture_output=True, check=True).stdout.decode().split()
    assert DROPBEAR in names and "bin/busybox" in names
    libs = [n for n in names if re.search(r"\.so(\.\d+)*$", n)]
    assert libs == [], f"shared libraries in the SSH image: {libs}"
