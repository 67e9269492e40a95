"""Read a firmware ELF with pyelftools into plain values.

All parsing happens in :func:`load_image`, so that any malformed input turns into one
:class:`FirmwareFileError` naming the file and the problem; the checks then work on
plain data.  The limits mirror what the kernel checks before loading
(drivers/remoteproc/remoteproc_elf_loader.c rproc_elf_sanity_check(),
rproc_elf_load_segments(), find_table()).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

from ..errors import PreflightError, UnreadableFileError
from ..files import read_regular

#: Errors pyelftools raises on malformed input.
_PARSE_ERRORS = (ELFError, ConstructError, struct.error, ValueError, UnicodeDecodeError,
                 IndexError, KeyError, OverflowError, AssertionError, TypeError, EOFError,
                 RecursionError, MemoryError)

#: Larger firmware files are refused (the kernel takes them, but an M-core image this big is
#: not an M-core image).
MAX_FIRMWARE_BYTES = 64 * 1024 * 1024


class FirmwareFileError(PreflightError):
    """The firmware file cannot be read or is not a well-formed ELF."""

    def __init__(self, path: Path, problem: str, fix: str = ""):
        self.path = path
        self.problem = problem
        fix = fix or ("rebuild the firmware and pass the linked .elf (not the .bin or .hex) "
                      "produced by arm-none-eabi-gcc")
        super().__init__(f"firmware {path}: {problem}; {fix}")


@dataclass(frozen=True)
class LoadSegment:
    """A PT_LOAD program header with its file bytes (``filesz`` bytes)."""

    index: int
    paddr: int
    vaddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int
    data: bytes

    @property
    def flag_str(self) -> str:
        """``"RWX"`` with ``-`` for absent flags."""
        return "".join(ch if self.flags & bit else "-" for ch, bit in
                       (("R", P_FLAGS.PF_R), ("W", P_FLAGS.PF_W), ("X", P_FLAGS.PF_X)))


@dataclass(frozen=True)
class Section:
    """A section: name, sh_addr, size and its bytes (empty for NOBITS)."""

    name: str
    addr: int
    size: int
    data: bytes


@dataclass(frozen=True)
class FirmwareImage:
    """The parts of an ELF that remoteproc uses.

    Attributes:
        path: the file.
        size: file size in bytes.
        elfclass: 32 or 64.
        little_endian: byte order.
        machine: e_machine as pyelftools names it (``"EM_ARM"``).
        entry: e_entry.
        segments: the PT_LOAD headers, in file order.
        rsc_table: the ``.resource_table`` section, or None.
    """

    path: Path
    size: int
    elfclass: int
    little_endian: bool
    machine: str
    entry: int
    segments: tuple[LoadSegment, ...]
    rsc_table: Section | None


def _read_bytes(path: Path) -> bytes:
    # a regular file only, size bounded while reading (a FIFO or /dev/zero is refused)
    try:
        return read_regular(path, MAX_FIRMWARE_BYTES, "firmware")
    except UnreadableFileError as e:
        raise FirmwareFileError(path, f"cannot read it: it {e.problem}",
                                "give the firmware ELF file") from None


def load_image(path: Path) -> FirmwareImage:
    """Parse ``path`` into a :class:`FirmwareImage`.

    Args:
        path: the firmware ELF.

    Returns:
        The image (all bytes copied; the file is closed).

    Raises:
        FirmwareFileError: unreadable, not an ELF, truncated (the kernel would print
            "Image is too small" or "truncated fw: need 0x.. avail 0x.."), or otherwise malformed.
    """
    path = Path(path)
    blob = _read_bytes(path)
    if len(blob) < 52:  # sizeof(Elf32_Ehdr)
        raise FirmwareFileError(path, f"{len(blob)} bytes is smaller than an ELF header (the "
                                      "kernel prints \"Image is too small\")")
    if blob[:4] != b"\x7fELF":
        raise FirmwareFileError(path, f"not an ELF file (magic {blob[:4].hex()}, expected "
                                      "7f454c46; the kernel prints \"Image is corrupted (bad "
                                      "magic)\")")
    try:
        return _parse(path, blob)
    except FirmwareFileError:
        raise
    except _PARSE_ERRORS as e:
        raise FirmwareFileError(path, f"malformed ELF ({type(e).__name__}: {e})") from e


def _parse(path: Path, blob: bytes) -> FirmwareImage:
    elf = ELFFile(io.BytesIO(blob))
    hdr = elf.header
    segments = []
    for i in range(elf.num_segments()):
        seg = elf.get_segment(i)
        if seg["p_type"] != "PT_LOAD":
            continue
        off, filesz = seg["p_offset"], seg["p_filesz"]
        if filesz and off + filesz > len(blob):
            raise FirmwareFileError(path, f"truncated: PT_LOAD segment {i} needs file bytes up "
                                          f"to 0x{off + filesz:x} but the file has 0x{len(blob):x} "
                                          "(the kernel prints \"truncated fw: need "
                                          f"0x{off + filesz:x} avail 0x{len(blob):x}\")")
        segments.append(LoadSegment(i, seg["p_paddr"], seg["p_vaddr"], off, filesz,
                                    seg["p_memsz"], seg["p_flags"], blob[off:off + filesz]))
    rsc = None
    if hdr["e_shoff"] and elf.num_sections():
        if hdr["e_shoff"] + hdr["e_shnum"] * hdr["e_shentsize"] > len(blob):
            raise FirmwareFileError(path, "truncated: the section header table ends past the "
                                          "end of the file")
        sec = elf.get_section_by_name(".resource_table")
        if sec is not None:
            size = sec["sh_size"]
            off = sec["sh_offset"]
            if sec["sh_type"] != "SHT_NOBITS" and off + size > len(blob):
                raise FirmwareFileError(path, "truncated: .resource_table ends past the end of "
                                              "the file (the kernel prints \"resource table "
                                              "truncated\")")
            data = b"" if sec["sh_type"] == "SHT_NOBITS" else blob[off:off + size]
            rsc = Section(".resource_table", sec["sh_addr"], size, data)
    return FirmwareImage(path=path, size=len(blob), elfclass=elf.elfclass,
                         little_endian=elf.little_endian, machine=str(hdr["e_machine"]),
                         entry=hdr["e_entry"], segments=tuple(segments), rsc_table=rsc)
