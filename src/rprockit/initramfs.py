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
reached like a real one (deploy, verify over SSH): dropbear, built the same way
as busybox from Debian's ``dropbear`` source package (static, bundled
libtomcrypt/libtommath, no zlib, public-key logins only: see
:data:`DROPBEAR_CONFIGURE` and :data:`DROPBEAR_LOCALOPTIONS`) and cached as
``dropbear-<debian arch>-<source version>/dropbear``, a host key generated on
this host (so a known_hosts entry can be written before the board boots and
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .arch import arch_info
from .errors import ToolMissingError, UserError
from .runner import Runner, require_tool


#: The server binary in the image (dropbear's ``make install`` path, sbindir).
DROPBEAR = "usr/sbin/dropbear"
#: dropbear's configure options for the board server.  A static binary needs no
#: library of the target architecture in the image; the Debian cross toolchains
#: ship no libz, libcrypt, libtomcrypt or libtommath for the target, hence no zlib
#: (``--disable-zlib``), the libtom copies in dropbear's own tree
#: (``--enable-bundled-libtom``) and no password logins (below).  An initramfs
#: board keeps no login records, hence no lastlog/utmp/wtmp.  syslog support
#: stays: without it (``--disable-syslog``) dropbear has no ``-E``
#: (log to stderr), which the init passes (svr-runopts.c: ``case 'E'`` is under
#: ``#ifndef DISABLE_SYSLOG``).  Options: dropbear's ``configure --help``.
DROPBEAR_CONFIGURE = ("--enable-static", "--disable-zlib", "--enable-bundled-libtom",
                      "--disable-lastlog", "--disable-utmp", "--disable-utmpx",
                      "--disable-wtmp", "--disable-wtmpx", "--disable-pututline",
                      "--disable-pututxline")
#: Appended to Debian's ``debian/localoptions.h`` (which overrides dropbear's
#: ``default_options.h``): password logins need ``crypt()`` (libcrypt, not in the
#: cross toolchains; sysoptions.h: "DROPBEAR_SVR_PASSWORD_AUTH requires
#: `crypt()'"); the board is reached with public keys only.
DROPBEAR_LOCALOPTIONS = """
/* rprockit: public-key logins only (no crypt() in the static cross build) */
#define DROPBEAR_SVR_PASSWORD_AUTH 0
"""
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
#: interface may appear late (fec probes after its PHY), hence the wait.  No
#: ``-s`` (no password logins): the server is built without them
#: (:data:`DROPBEAR_LOCALOPTIONS`), and then has no such option.
INIT_SSH = """# network and SSH server (rprockit initramfs with SSH access)
. /etc/rprockit/network
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts 2>/dev/null
ip link set lo up
i=0
while [ ! -e "/sys/class/net/$IFACE" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ip addr add "$ADDRESS" dev "$IFACE" && ip link set "$IFACE" up &&
  ip route add default via "$GATEWAY"
/usr/sbin/dropbear -F -E -r /etc/dropbear/dropbear_ed25519_host_key -p "$SSH_PORT" \\
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


def source_version(package: str, runner: Runner) -> str:
    """Version of a Debian source package apt would fetch (``apt-cache showsrc``).

    Args:
        package: source package name (``busybox``, ``dropbear``).
        runner: runs apt-cache.

    Returns:
        The highest version the deb-src entries offer (``1:1.35.0-4+deb12u1``).

    Raises:
        InitramfsError: no deb-src entry provides the package (names the fix).
    """
    require_tool("apt-cache")
    out = runner.run(["apt-cache", "showsrc", "--", package], check=False).stdout
    versions = [ln.split(":", 1)[1].strip() for ln in out.splitlines()
                if ln.startswith("Version:")]
    if not versions:
        raise InitramfsError(
            f"apt knows no {package} source package: add a deb-src entry for your Debian "
            "release (./setup.sh writes /etc/apt/sources.list.d/rprockit.sources) and run "
            "apt-get update")
    return max(versions, key=_debian_version_key)


def _debian_version_key(version: str) -> tuple:
    epoch, _, rest = version.rpartition(":")
    return (int(epoch or 0), [int(x) if x.isdigit() else x for x in
                              re.split(r"(\d+)", rest) if x])


#: Builds one program from an unpacked source package: ``(source dir, empty build
#: dir, log file, arch) -> the built binary``.
SourceBuild = Callable[[Path, Path, Path, str], Path]


def build_from_source(package: str, program: str, arch: str, build: SourceBuild,
                      cache: Path | None = None, runner: Runner | None = None,
                      say: Callable[[str], None] = print, takes: str = "") -> Path:
    """A program for ``arch`` built from Debian's source package, once per machine.

    ``apt-get source <package>=<version>`` (the version :func:`source_version`
    names) into ``<cache>/<package>-<debian arch>-<version>.partial``, then
    ``build``; the binary is kept as ``<cache>/<package>-<debian arch>-<version>/
    <program>`` with the build log beside it, and the work directory removed.  A
    file lock (``<cache>/.<package>.lock``) serialises concurrent builds; a
    cached binary is returned at once.

    Args:
        package: Debian source package name.
        program: file name of the binary in the cache.
        arch: kernel ARCH (``arm``, ``arm64``).
        build: builds the binary (see :data:`SourceBuild`).
        cache: the machine cache (default :func:`machine_cache`).
        runner: runs apt-cache and apt-get.
        say: progress lines.
        takes: how long the build takes, for the progress line (``about a minute``).

    Returns:
        The binary.

    Raises:
        InitramfsError: no such source package (deb-src entry missing).
        ToolMissingError: the cross compiler of ``arch`` is not installed.
        UserError: the download or the build fails (names the log).
    """
    runner = runner or Runner()
    info = arch_info(arch)
    cache = cache or machine_cache()
    version = source_version(package, runner)
    safe = version.replace(":", "_")
    root = cache / f"{package}-{info.debian_arch}-{safe}"
    binary = root / program
    if binary.is_file():
        return binary
    require_tool(f"{info.cross_compile}gcc", f"to build {package} for {arch}")
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{package}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        work = cache / f"{package}-{info.debian_arch}-{safe}.partial"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        say(f"[initramfs] {package} {version} for {info.debian_arch}: apt-get source {package}")
        runner.run(["apt-get", "source", "--", f"{package}={version}"], cwd=work,
                   hint="add a deb-src entry (./setup.sh writes one) and run apt-get update")
        src = next(d for d in work.iterdir() if d.is_dir() and d.name.startswith(f"{package}-"))
        out = work / "out"
        out.mkdir()
        log = work / "build.log"
        say(f"[initramfs] building static {package} with {info.cross_compile}gcc "
            f"({takes + '; ' if takes else ''}log {log})")
        built = build(src, out, log, arch)
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, root / f"{program}.tmp")
        os.replace(root / f"{program}.tmp", binary)
        (root / "build.log").write_text(log.read_text())
        shutil.rmtree(work, ignore_errors=True)
        say(f"[initramfs] {package} cached: {binary}")
    return binary


def busybox(arch: str, cache: Path | None = None, runner: Runner | None = None,
            say: Callable[[str], None] = print) -> Path:
    """The static busybox binary for ``arch``, built from Debian's source once per machine.

    Debian's ``debian/config/pkg/static`` (minus :data:`BUSYBOX_OFF`), ``make
    CROSS_COMPILE=<arch's Debian cross prefix> -j2`` (``nice``), through
    :func:`build_from_source`: ``<machine cache>/busybox-<debian arch>-<version>/
    busybox``.

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

    def build(src: Path, out: Path, log: Path, arch: str) -> Path:
        config = (src / "debian/config/pkg/static").read_text()
        for sym in BUSYBOX_OFF:
            config = re.sub(rf"^{sym}=.*$", f"# {sym} is not set", config, flags=re.M)
        (out / ".config").write_text(config)
        make = ["nice", "-n", "10", "make", f"O={out}",
                f"CROSS_COMPILE={arch_info(arch).cross_compile}"]
        # make runs busybox's silentoldconfig on the complete Debian .config itself
        runner.stream([*make, "-j2"], log, cwd=src,
                      hint=f"busybox build for {arch} failed; see {log}")
        return out / "busybox"

    return build_from_source("busybox", "busybox", arch, build, cache, runner, say,
                             takes="about a minute")


def dropbear(arch: str, cache: Path | None = None, runner: Runner | None = None,
             say: Callable[[str], None] = print) -> Path:
    """The static dropbear SSH server for ``arch``, built from Debian's source once per machine.

    Debian's ``debian/localoptions.h`` plus :data:`DROPBEAR_LOCALOPTIONS`,
    ``configure --host=<multiarch triplet>`` with :data:`DROPBEAR_CONFIGURE`,
    ``make PROGRAMS=dropbear -j2`` (``nice``) in a separate build directory, then
    the cross ``strip``, through :func:`build_from_source`: ``<machine cache>/
    dropbear-<debian arch>-<version>/dropbear``.

    Args:
        arch: kernel ARCH (``arm``, ``arm64``).
        cache: the machine cache (default :func:`machine_cache`).
        runner: runs apt-get, configure and make.
        say: progress lines (the build takes about 20 s on 2 cores).

    Returns:
        The binary.

    Raises:
        InitramfsError: no dropbear source package (deb-src entry missing).
        UserError: the download or the build fails (names the log).
    """
    runner = runner or Runner()

    def build(src: Path, out: Path, log: Path, arch: str) -> Path:
        info = arch_info(arch)
        options = src / "debian/localoptions.h"
        base = options.read_text() if options.is_file() else ""
        (out / "localoptions.h").write_text(base + DROPBEAR_LOCALOPTIONS)
        hint = f"dropbear build for {arch} failed; see {log}"
        runner.stream(["sh", src / "configure", f"--host={info.multiarch}",
                       *DROPBEAR_CONFIGURE], log, cwd=out, hint=hint)
        runner.stream(["nice", "-n", "10", "make", "PROGRAMS=dropbear", "-j2"], log,
                      cwd=out, hint=hint)
        runner.run([f"{info.cross_compile}strip", "--", out / "dropbear"], hint=hint)
        return out / "dropbear"

    return build_from_source("dropbear", "dropbear", arch, build, cache, runner, say,
                             takes="about 20 s")


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


def _stage_ssh(stage: Path, arch: str, ssh: SSHAccess, runner: Runner) -> None:
    """Copy dropbear, the host key, authorized_keys and settings."""
    if not ssh.authorized_keys.strip():
        raise InitramfsError("SSH access needs at least one public key for root's "
                             "authorized_keys (e.g. the content of ~/.ssh/id_ed25519.pub)")
    if not ssh.host_key.is_file():
        raise InitramfsError(f"host key {ssh.host_key} does not exist; create it with "
                             f"dropbearkey -t ed25519 -f {ssh.host_key}")
    server = stage / DROPBEAR
    server.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(dropbear(arch, runner=runner), server)
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
                   out: Path, epoch: int, runner: Runner | None = None,
                   extra_files: dict[str, Path] | None = None,
                   ssh: SSHAccess | None = None) -> Path:
    """Write an uncompressed ``newc`` cpio initramfs.

    Args:
        arch: kernel ARCH (selects the busybox and dropbear builds, from
            :func:`machine_cache`).
        release: kernel release; modules go to ``/lib/modules/<release>/extra``
            and ``depmod`` runs on the host for it.
        modules: ``.ko`` files.
        firmware: files for ``/lib/firmware``.
        out: the cpio file to write.
        epoch: mtime for every file (seconds since the epoch).
        runner: runs apt-get, the busybox and dropbear builds, depmod and cpio.
        extra_files: ``{path in image: host file}``.
        ssh: also bring up the network and run dropbear (see :class:`SSHAccess`);
            None for the console-only image.

    Returns:
        ``out``.

    Raises:
        InitramfsError: SSH access is incomplete (no key or no host key), or a
            source package is unknown to apt (deb-src entry missing).
        UserError: a source package cannot be downloaded or built, or cpio fails.
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
        _stage_ssh(stage, arch, ssh, runner)
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
