"""Initramfs for the emulated board: busybox-static, the modules and the firmware.

busybox is built from Debian's own ``busybox`` source package (``apt-get
source busybox``, needs a deb-src entry: ``setup.sh`` writes one) with Debian's
static configuration (``debian/config/pkg/static``, the one Debian's
``busybox-static`` is built from) and the Debian cross compiler of the board's
architecture, so the board's userland needs no foreign-architecture package.
It is built once per machine and kept in :func:`machine_cache`
(``busybox-<debian arch>-<source version>/busybox``).  The cpio archive (``newc``) is built by GNU
cpio with ``--reproducible`` from a tree whose mtimes are the source commit
time, so identical inputs give identical bytes.

With :class:`SSHAccess` the image also runs an SSH server, so the board can be
reached like a real one (deploy, verify over SSH): Debian's ``dropbear-bin`` of
the target architecture and the shared libraries it needs (found by walking
``DT_NEEDED`` from the binary, see :func:`elf_closure`), a host key generated
on this host (so a known_hosts entry can be written before the board boots and
the host key is really verified), root's ``authorized_keys``, and an init that
configures the network interface (QEMU user networking: 10.0.2.15/24, gateway
10.0.2.2, see QEMU's docs "Network emulation", ``-nic user``) and starts
dropbear.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .arch import arch_info
from .errors import ToolMissingError, UserError
from .runner import Runner, require_tool


#: Debian packages unpacked for the SSH server: dropbear-bin and its ``Depends``
#: (dropbear-bin 2022.83 on bookworm: libc6, libcrypt1, libtomcrypt1, libtommath1,
#: zlib1g; libtomcrypt1 depends on libgmp10).  Only the files the binary needs
#: (its DT_NEEDED closure) go into the image.
DROPBEAR_PACKAGES = ("dropbear-bin", "libc6", "libcrypt1", "libtomcrypt1", "libtommath1",
                     "zlib1g", "libgmp10")
#: The server binary inside the dropbear-bin package.
DROPBEAR = "usr/sbin/dropbear"
#: Where the host key goes in the image (dropbear's default path for ed25519).
HOST_KEY = "etc/dropbear/dropbear_ed25519_host_key"

INIT_HEAD = """#!/bin/busybox sh
# rprockit emulated-board init: mounts, then a root shell on the console.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
[ -d /sys/kernel/debug ] && mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
dmesg -n 1
"""

INIT_TAIL = """echo "rprockit initramfs: $(uname -r) ready"
export PS1='rprockit# '
export HOME=/root
exec setsid cttyhack sh
"""

#: Network and SSH server, sourced settings in /etc/rprockit/network.  The
#: interface may appear late (fec probes after its PHY), hence the wait.
INIT_SSH = """# network and SSH server (rprockit initramfs with SSH access)
. /etc/rprockit/network
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts 2>/dev/null
ip link set lo up
i=0
while [ ! -e "/sys/class/net/$IFACE" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ip addr add "$ADDRESS" dev "$IFACE" && ip link set "$IFACE" up &&
  ip route add default via "$GATEWAY"
/usr/sbin/dropbear -F -E -s -r /etc/dropbear/dropbear_ed25519_host_key -p "$SSH_PORT" \\
  -P /run/dropbear.pid 2>>/run/dropbear.log &
echo "rprockit initramfs: $IFACE $ADDRESS, dropbear on port $SSH_PORT (log /run/dropbear.log)"
"""

#: The init without SSH access (unchanged bytes for the plain image).
INIT = INIT_HEAD + INIT_TAIL


class InitramfsError(UserError):
    """The initramfs could not be assembled (missing library, bad key, ...)."""


@dataclass(frozen=True)
class SSHAccess:
    """SSH access to the emulated board.

    Attributes:
        host_key: dropbear-format private host key on this host
            (:func:`generate_host_key`); installed as
            ``/etc/dropbear/dropbear_ed25519_host_key``.
        authorized_keys: OpenSSH public key lines allowed to log in as root.
        iface: the guest's network interface.
        address: its address with prefix length (QEMU user networking: 10.0.2.15/24).
        gateway: default gateway (QEMU user networking: 10.0.2.2).
        port: the guest port dropbear listens on.
    """

    host_key: Path
    authorized_keys: str
    iface: str = "eth0"
    address: str = "10.0.2.15/24"
    gateway: str = "10.0.2.2"
    port: int = 22


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissingError(tool, package)
    return path


def deb_tree(packages: Sequence[str], deb_arch: str, cache: Path, name: str,
             runner: Runner) -> Path:
    """Download Debian packages once and unpack them together into ``cache/name``.

    Args:
        packages: binary package names (without architecture).
        deb_arch: Debian architecture (``armhf``).
        cache: download cache; the ``.deb`` files stay there.
        name: directory name of the unpacked tree in ``cache``.
        runner: runs ``apt-get download`` and ``dpkg-deb -x``.

    Returns:
        The unpacked tree (reused when complete).

    Raises:
        InitramfsError: apt cannot download a package (names the fix).
    """
    root = cache / name
    done = root / ".rprockit-complete"
    if done.is_file() and done.read_text().split() == list(packages):
        return root
    cache.mkdir(parents=True, exist_ok=True)
    debs = []
    for pkg in packages:
        found = sorted(cache.glob(f"{pkg}_*_{deb_arch}.deb"))
        if not found:
            require_tool("apt-get")
            try:
                runner.run(["apt-get", "download", f"{pkg}:{deb_arch}"], cwd=cache)
            except UserError as e:
                raise InitramfsError(
                    f"cannot download {pkg}:{deb_arch} for the initramfs: {e}\nEnable the "
                    f"architecture once as root: dpkg --add-architecture {deb_arch} && "
                    "apt-get update") from e
            found = sorted(cache.glob(f"{pkg}_*_{deb_arch}.deb"))
        debs.append(found[-1])
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for deb in debs:
        runner.run(["dpkg-deb", "-x", deb, tmp])
    (tmp / done.name).write_text("\n".join(packages) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def machine_cache() -> Path:
    """The per-machine cache shared by every workspace and profile.

    ``$RPROCKIT_CACHE``, else ``$XDG_CACHE_HOME/rprockit``, else ``~/.cache/rprockit``.
    """
    if os.environ.get("RPROCKIT_CACHE"):
        return Path(os.environ["RPROCKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rprockit"


#: Applets switched off in Debian's static configuration when building here: ``tc``
#: uses the CBQ qdisc definitions that Linux 6.8 removed from the UAPI headers
#: (``TCA_CBQ_*``, commit "net/sched: Retire CBQ qdisc"), so it does not build
#: against trixie's cross headers; the boards do not need it.
BUSYBOX_OFF = ("CONFIG_TC", "CONFIG_FEATURE_TC_INGRESS")


def busybox_source_version(runner: Runner) -> str:
    """Version of the busybox source package apt would fetch (``apt-cache showsrc``).

    Raises:
        InitramfsError: no deb-src entry provides busybox (names the fix).
    """
    require_tool("apt-cache")
    out = runner.run(["apt-cache", "showsrc", "busybox"], check=False).stdout
    versions = [ln.split(":", 1)[1].strip() for ln in out.splitlines()
                if ln.startswith("Version:")]
    if not versions:
        raise InitramfsError(
            "apt knows no busybox source package: add a deb-src entry for your Debian "
            "release (./setup.sh writes /etc/apt/sources.list.d/rprockit.sources) and run "
            "apt-get update")
    return max(versions, key=_debian_version_key)


def _debian_version_key(version: str) -> tuple:
    epoch, _, rest = version.rpartition(":")
    return (int(epoch or 0), [int(x) if x.isdigit() else x for x in
                              re.split(r"(\d+)", rest) if x])


def busybox(arch: str, cache: Path | None = None, runner: Runner | None = None,
            say: Callable[[str], None] = print) -> Path:
    """The static busybox binary for ``arch``, built from Debian's source once per machine.

    ``apt-get source busybox=<version>``, Debian's ``debian/config/pkg/static``
    (minus :data:`BUSYBOX_OFF`), ``make CROSS_COMPILE=<arch's Debian cross prefix>
    -j2`` (``nice``); the result goes to ``<machine cache>/busybox-<debian arch>-
    <version>/busybox``.  A file lock serialises concurrent builds.

    Args:
        arch: kernel ARCH (``arm``, ``arm64``).
        cache: the machine cache (default :func:`machine_cache`).
        runner: runs apt-get and make.
        say: progress lines (the build takes about a minute on 2 cores).

    Returns:
        The binary.

    Raises:
        InitramfsError: no busybox source package (deb-src entry missing).
        UserError: the download or the build fails (names the log).
    """
    runner = runner or Runner()
    info = arch_info(arch)
    cache = cache or machine_cache()
    version = busybox_source_version(runner)
    safe = version.replace(":", "_")
    root = cache / f"busybox-{info.debian_arch}-{safe}"
    binary = root / "busybox"
    if binary.is_file():
        return binary
    require_tool(f"{info.cross_compile}gcc", f"to build busybox for {arch}")
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".busybox.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        work = cache / f"busybox-{info.debian_arch}-{safe}.partial"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        say(f"[initramfs] busybox {version} for {info.debian_arch}: apt-get source busybox")
        runner.run(["apt-get", "source", "--", f"busybox={version}"], cwd=work,
                   hint="add a deb-src entry (./setup.sh writes one) and run apt-get update")
        src = next(d for d in work.iterdir() if d.is_dir() and d.name.startswith("busybox-"))
        out = work / "out"
        out.mkdir()
        config = (src / "debian/config/pkg/static").read_text()
        for sym in BUSYBOX_OFF:
            config = re.sub(rf"^{sym}=.*$", f"# {sym} is not set", config, flags=re.M)
        (out / ".config").write_text(config)
        log = work / "build.log"
        say(f"[initramfs] building static busybox with {info.cross_compile}gcc "
            f"(about a minute; log {log})")
        make = ["nice", "-n", "10", "make", f"O={out}", f"CROSS_COMPILE={info.cross_compile}"]
        # make runs busybox's silentoldconfig on the complete Debian .config itself
        runner.stream([*make, "-j2"], log, cwd=src,
                      hint=f"busybox build for {arch} failed; see {log}")
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy2(out / "busybox", root / "busybox.tmp")
        os.replace(root / "busybox.tmp", binary)
        (root / "build.log").write_text(log.read_text())
        shutil.rmtree(work, ignore_errors=True)
        say(f"[initramfs] busybox cached: {binary}")
    return binary


def dropbear(arch: str, cache: Path, runner: Runner) -> Path:
    """The unpacked ``dropbear-bin`` tree (with its libraries) for ``arch``.

    Returns:
        The tree root; the server is ``<root>/usr/sbin/dropbear``.

    Raises:
        InitramfsError: a package cannot be downloaded.
    """
    deb_arch = arch_info(arch).debian_arch
    return deb_tree(DROPBEAR_PACKAGES, deb_arch, cache, f"dropbear-{deb_arch}", runner)


def _elf_deps(path: Path) -> tuple[str | None, list[str]]:
    """``(PT_INTERP, DT_NEEDED names)`` of an ELF file (pyelftools)."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.segments import InterpSegment

    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        interp = next((s.get_interp_name() for s in elf.iter_segments()
                       if isinstance(s, InterpSegment)), None)
        needed = [t.needed  # type: ignore[attr-defined]  # set by pyelftools for DT_NEEDED
                  for s in elf.iter_sections() if isinstance(s, DynamicSection)
                  for t in s.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
    return interp, needed


def elf_closure(root: Path, binary: str, triplet: str) -> list[str]:
    """Files (relative to ``root``) a dynamically linked program needs to run.

    Follows ``PT_INTERP`` and ``DT_NEEDED`` recursively and resolves each name in
    the multiarch directories ``lib/<triplet>``, ``usr/lib/<triplet>``, ``lib``,
    ``usr/lib`` (glibc's ld.so default search path on Debian).  Symbolic links
    are kept as links and their targets added.

    Args:
        root: an unpacked tree (:func:`deb_tree`).
        binary: the program, relative to ``root``.
        triplet: multiarch triplet (``arm-linux-gnueabihf``).

    Returns:
        Sorted relative paths, the program first.

    Raises:
        InitramfsError: a library is not in the tree (names it and the program).
    """
    dirs = [f"lib/{triplet}", f"usr/lib/{triplet}", "lib", "usr/lib"]
    files: set[str] = set()
    todo = [binary]
    while todo:
        rel = todo.pop()
        if rel in files:
            continue
        files.add(rel)
        p = root / rel
        if p.is_symlink():
            link = os.readlink(p)
            target = root / link.lstrip("/") if link.startswith("/") else p.parent / link
            todo.append(os.path.relpath(os.path.normpath(target), root))
            continue
        interp, needed = _elf_deps(p)
        if interp:
            todo.append(interp.lstrip("/"))
        for lib in needed:
            hit = next((f"{d}/{lib}" for d in dirs if (root / d / lib).exists()), None)
            if hit is None:
                raise InitramfsError(
                    f"{rel} needs {lib}, which is in none of {', '.join(dirs)} under {root}: "
                    "add the Debian package that ships it to DROPBEAR_PACKAGES in "
                    "rprockit/initramfs.py (dpkg -S or the package's file list names it)")
            todo.append(hit)
    return [binary, *sorted(files - {binary})]


def generate_host_key(path: Path, runner: Runner | None = None) -> str:
    """Create a dropbear ed25519 host key at ``path`` (replaced when present).

    Uses the host's ``dropbearkey -t ed25519 -f PATH`` (Debian ``dropbear-bin``).

    Returns:
        Its public key, ``ssh-ed25519 AAAA...`` (see :func:`host_public_key`).

    Raises:
        ToolMissingError: dropbearkey is not installed.
    """
    runner = runner or Runner()
    _require("dropbearkey", "dropbear-bin")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    runner.run(["dropbearkey", "-t", "ed25519", "-f", path])
    return host_public_key(path, runner)


def host_public_key(path: Path, runner: Runner | None = None) -> str:
    """Public part of a dropbear private key: ``<type> <base64>`` (comment dropped).

    Read with ``dropbearkey -y -f PATH``, which prints ``Public key portion is:``,
    the OpenSSH line and the fingerprint.

    Raises:
        InitramfsError: the file is not a dropbear key.
        ToolMissingError: dropbearkey is not installed.
    """
    runner = runner or Runner()
    _require("dropbearkey", "dropbear-bin")
    out = runner.run(["dropbearkey", "-y", "-f", path], check=False)
    for line in out.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].startswith(("ssh-", "ecdsa-")):
            return f"{words[0]} {words[1]}"
    raise InitramfsError(f"{path} is not a dropbear private key (dropbearkey -y printed no "
                         f"public key: {(out.stderr or out.stdout).strip()}); create one with "
                         "dropbearkey -t ed25519 -f FILE")


def known_hosts_line(host: str, port: int, public_key: str) -> str:
    """A known_hosts line for ``host:port`` (OpenSSH sshd(8) "SSH_KNOWN_HOSTS FILE
    FORMAT": ``[host]:port`` when the port is not 22)."""
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {public_key}"


#: Kconfig symbols the SSH image needs beyond a console-only one, and why.
SSH_KCONFIG = {
    "CONFIG_NET": "networking",
    "CONFIG_INET": "TCP/IP for the SSH connection",
    "CONFIG_UNIX98_PTYS": "ptys for interactive logins",
    # glibc 2.36 on 32-bit ARM (Debian bookworm armhf, 32-bit time_t) makes the
    # time32 syscalls (futex 240, _newselect 142, pselect6 335, ppoll 336) whenever
    # the timeout fits 32 bits; the kernel only has them with this symbol
    # (kernel/futex/syscalls.c futex_time32, arch/arm/tools/syscall.tbl).  Without
    # it dropbear dies with "The futex facility returned an unexpected error code."
    "CONFIG_COMPAT_32BIT_TIME": "time32 syscalls (futex, select) that glibc armhf uses",
}


def ssh_kernel_problems(config_text: str, arch: str) -> list[str]:
    """Kconfig symbols missing from a kernel ``.config`` for the SSH image.

    Args:
        config_text: the kernel's ``.config``.
        arch: kernel ARCH; ``CONFIG_COMPAT_32BIT_TIME`` matters for 32-bit ``arm``.

    Returns:
        One line per missing symbol (``CONFIG_X=y (why)``); empty when all are set.
    """
    have = {ln.split("=", 1)[0] for ln in config_text.splitlines() if ln.endswith("=y")}
    return [f"{sym}=y ({why})" for sym, why in SSH_KCONFIG.items()
            if sym not in have and (sym != "CONFIG_COMPAT_32BIT_TIME" or arch == "arm")]


def _stage_ssh(stage: Path, arch: str, ssh: SSHAccess, cache: Path, runner: Runner) -> None:
    """Copy dropbear, its libraries, the host key, authorized_keys and settings."""
    if not ssh.authorized_keys.strip():
        raise InitramfsError("SSH access needs at least one public key for root's "
                             "authorized_keys (e.g. the content of ~/.ssh/id_ed25519.pub)")
    if not ssh.host_key.is_file():
        raise InitramfsError(f"host key {ssh.host_key} does not exist; create it with "
                             f"dropbearkey -t ed25519 -f {ssh.host_key}")
    root = dropbear(arch, cache, runner)
    for rel in elf_closure(root, DROPBEAR, arch_info(arch).multiarch):
        src, dst = root / rel, stage / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)
    key = stage / HOST_KEY
    key.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ssh.host_key, key)
    key.chmod(0o600)
    dot_ssh = stage / "root/.ssh"
    dot_ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    dot_ssh.chmod(0o700)
    (dot_ssh / "authorized_keys").write_text(ssh.authorized_keys.strip() + "\n")
    (dot_ssh / "authorized_keys").chmod(0o600)
    # '*' in shadow: no password login, but not a locked account for pubkey logins
    (stage / "etc/shadow").write_text("root:*:0:0:99999:7:::\n")
    (stage / "etc/shadow").chmod(0o600)
    (stage / "etc/shells").write_text("/bin/sh\n")
    (stage / "etc/nsswitch.conf").write_text("passwd: files\ngroup: files\nshadow: files\n")
    conf = stage / "etc/rprockit/network"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f"IFACE={ssh.iface}\nADDRESS={ssh.address}\nGATEWAY={ssh.gateway}\n"
                    f"SSH_PORT={ssh.port}\n")


def make_initramfs(arch: str, release: str, modules: list[Path], firmware: list[Path],
                   out: Path, cache: Path, epoch: int, runner: Runner | None = None,
                   extra_files: dict[str, Path] | None = None,
                   ssh: SSHAccess | None = None) -> Path:
    """Write an uncompressed ``newc`` cpio initramfs.

    Args:
        arch: kernel ARCH (selects the busybox package).
        release: kernel release; modules go to ``/lib/modules/<release>/extra``
            and ``depmod`` runs on the host for it.
        modules: ``.ko`` files.
        firmware: files for ``/lib/firmware``.
        out: the cpio file to write.
        cache: download cache (the SSH image's Debian packages); busybox comes from
            :func:`machine_cache`.
        epoch: mtime for every file (seconds since the epoch).
        runner: runs apt-get, dpkg-deb, depmod and cpio.
        extra_files: ``{path in image: host file}``.
        ssh: also bring up the network and run dropbear (see :class:`SSHAccess`);
            None for the console-only image.

    Returns:
        ``out``.

    Raises:
        InitramfsError: SSH access is incomplete (no key) or a library is missing.
        UserError: a package cannot be downloaded or cpio fails.
    """
    runner = runner or Runner()
    require_tool("cpio")
    require_tool("depmod")
    bb = busybox(arch, runner=runner)
    stage = out.with_name(out.name + ".d")
    shutil.rmtree(stage, ignore_errors=True)
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "root", "etc", "lib/firmware"):
        (stage / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(bb, stage / "bin/busybox")
    (stage / "init").write_text(INIT_HEAD + (INIT_SSH if ssh else "") + INIT_TAIL)
    (stage / "init").chmod(0o755)
    (stage / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (stage / "etc/group").write_text("root:x:0:\n")
    if ssh:
        _stage_ssh(stage, arch, ssh, cache, runner)
    moddir = stage / "lib/modules" / release / "extra"
    moddir.mkdir(parents=True)
    for ko in modules:
        shutil.copy2(ko, moddir / ko.name)
    for fw in firmware:
        shutil.copy2(fw, stage / "lib/firmware" / fw.name)
    for dest, src in (extra_files or {}).items():
        p = stage / dest.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, p)
    runner.run(["depmod", "-b", stage, release])
    names = []
    for dirpath, dirnames, filenames in os.walk(stage):
        dirnames.sort()
        for n in [*dirnames, *sorted(filenames)]:
            p = Path(dirpath) / n
            os.utime(p, (epoch, epoch), follow_symlinks=False)
            names.append(str(p.relative_to(stage)))
    os.utime(stage, (epoch, epoch))
    listing = "\n".join(sorted(names)) + "\n"
    proc = runner.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0", "--reproducible"],
                      cwd=stage, input=listing.encode(), hint=f"cpio failed building {out}")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(proc.stdout)
    os.replace(tmp, out)
    shutil.rmtree(stage, ignore_errors=True)
    return out
