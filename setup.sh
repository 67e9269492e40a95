#!/usr/bin/env bash
# One-time set-up of a Debian 12 (bookworm) or Debian 13 (trixie) machine for
# rprockit: the Debian package sources it needs, the Debian packages (as root,
# or through sudo) and a Python virtual environment in .venv.
# Safe to run again: it only adds what is missing.
#
# - QEMU 10: the emulated boards need QEMU 10's i.MX7D SRC and OCRAM_S models
#   and its imx8mp-evk machine.  Debian 12 ships QEMU 7.2, so on bookworm
#   qemu-system-arm comes from bookworm-backports (only qemu-system-arm,
#   -common and -data move); Debian 13 has QEMU 10 in main.
# - linux-source-6.1 (the default profile's kernel) is a bookworm package; on
#   trixie it comes from bookworm and bookworm-security entries (where its
#   updates land) pinned at priority 100, so nothing else is taken from
#   bookworm.
# - deb-src entries: the emulated boards' busybox, and the SSH image's dropbear,
#   are built from Debian's own source packages with the cross compilers, so no
#   foreign-architecture package is needed (rprockit.initramfs).
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  git make gcc bc bison flex libssl-dev libelf-dev cpio kmod lzop ccache xz-utils
  device-tree-compiler gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu
  binutils-aarch64-linux-gnu libc6-dev-armhf-cross libc6-dev-arm64-cross gcc-arm-none-eabi libnewlib-arm-none-eabi
  qemu-system-arm linux-source-6.1 dpkg-dev
  # dropbear-bin: the host's dropbearkey makes the SSH image's host key
  openssh-server openssh-client python3-venv diffoscope-minimal dropbear-bin redis-server
  # pylibfdt builds from source where no wheel fits the Python (3.13 on trixie)
  python3-dev swig
)
# the lowest QEMU version the emulated boards need (major)
QEMU_MAJOR=10

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null && SUDO=(sudo) || SUDO=(false)
fi
as_root() {
  if [ "${SUDO[*]}" = false ]; then
    echo "setup: need root for: $*" >&2
    exit 2
  fi
  "${SUDO[@]}" "$@"
}

# shellcheck disable=SC1091
. /etc/os-release
CODENAME=${VERSION_CODENAME:-unknown}
case "$CODENAME" in
  bookworm|trixie) ;;
  *) echo "setup: Debian 12 (bookworm) or 13 (trixie) expected, found '$CODENAME'" >&2; exit 2 ;;
esac
LIST=/etc/apt/sources.list.d/rprockit.sources
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# The Debian archive this machine already uses for a suite (its own apt
# sources), so the extra entries below go to the same mirror:
# system_mirror [SUITE] (default: this release).  RPROCKIT_DEBIAN_MIRROR
# overrides the archive, RPROCKIT_DEBIAN_SECURITY_MIRROR the security archive.
system_mirror() {
  local f uri suite=${1:-$CODENAME}
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && [ "$f" != "$LIST" ] || continue
    # deb822: the URIs of the first stanza whose Suites name the suite
    uri=$(awk -v c="$suite" 'BEGIN { RS = ""; FS = "\n" }
      { u = ""; s = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split($i, a, " "); u = a[2] }
          if ($i ~ /^Suites:/) { n = split($i, b, " "); for (j = 2; j <= n; j++) if (b[j] == c) s = 1 }
        }
        if (s && u != "") { print u; exit } }' "$f")
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
  [ -f /etc/apt/sources.list ] || return 0
  # one-line format: deb [options] URI SUITE COMPONENTS...
  awk -v c="$suite" '$1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == c) { print $i; exit } }' /etc/apt/sources.list
}
MIRROR=${RPROCKIT_DEBIAN_MIRROR:-$(system_mirror)}
if [ -z "$MIRROR" ]; then
  echo "setup: no Debian archive for '$CODENAME' in the apt sources; set RPROCKIT_DEBIAN_MIRROR to its URI" >&2
  exit 2
fi
# linux-source-6.1 gets its updates in bookworm-security: on trixie, take them
# from the security archive this machine uses for trixie-security (if any)
SECURITY=
if [ "$CODENAME" = trixie ]; then
  SECURITY=${RPROCKIT_DEBIAN_SECURITY_MIRROR:-$(system_mirror trixie-security)}
  [ -n "$SECURITY" ] || echo "setup: note: no trixie-security entry in the apt sources;" \
    "linux-source-6.1 comes from bookworm without its security updates" >&2
fi

sources_text() {
  if [ "$CODENAME" = bookworm ]; then
    cat <<SRC
# rprockit (setup.sh): QEMU 10 from bookworm-backports, and source packages
Types: deb deb-src
URIs: $MIRROR
Suites: bookworm-backports
Components: main
Signed-By: $KEYRING

Types: deb-src
URIs: $MIRROR
Suites: bookworm
Components: main
Signed-By: $KEYRING
SRC
  else
    cat <<SRC
# rprockit (setup.sh): linux-source-6.1 from bookworm (pinned low), and source packages
Types: deb
URIs: $MIRROR
Suites: bookworm
Components: main
Signed-By: $KEYRING

SRC
    [ -z "$SECURITY" ] || cat <<SRC
Types: deb
URIs: $SECURITY
Suites: bookworm-security
Components: main
Signed-By: $KEYRING

SRC
    cat <<SRC
Types: deb-src
URIs: $MIRROR
Suites: trixie
Components: main
Signed-By: $KEYRING
SRC
  fi
}

PIN=/etc/apt/preferences.d/rprockit-bookworm
pin_text() {
  printf '%s\n' "# rprockit (setup.sh): take from bookworm only what trixie lacks" \
    "Package: *" "Pin: release n=bookworm" "Pin-Priority: 100" "" \
    "Package: *" "Pin: release n=bookworm-security" "Pin-Priority: 100"
}

apt_update() {
  # An index can be briefly out of sync ("File has unexpected size ... Mirror
  # sync in progress?") and apt-get update exits 100 although everything needed
  # resolves: retry, then let the install itself be the judge.
  for i in 1 2 3; do
    if as_root apt-get update -q; then return 0; fi
    if [ "$i" -lt 3 ]; then
      echo "setup: apt-get update failed (try $i of 3); retrying" >&2
      sleep $((i * 5))
    else
      echo "setup: apt-get update still fails; going on: the install below decides" >&2
    fi
  done
}

changed=0
if [ ! -f "$LIST" ] || [ "$(cat "$LIST")" != "$(sources_text)" ]; then
  echo "setup: writing $LIST"
  sources_text | as_root tee "$LIST" >/dev/null
  changed=1
fi
if [ "$CODENAME" = trixie ] && { [ ! -f "$PIN" ] || [ "$(cat "$PIN")" != "$(pin_text)" ]; }; then
  echo "setup: writing $PIN"
  pin_text | as_root tee "$PIN" >/dev/null
  changed=1
fi

qemu_major() {
  qemu-system-arm --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p'
}
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
have_qemu=$(qemu_major || true)
old_qemu=0
if [ -z "$have_qemu" ] || [ "$have_qemu" -lt "$QEMU_MAJOR" ]; then old_qemu=1; fi

if [ "${#missing[@]}" -gt 0 ] || [ "$old_qemu" -eq 1 ] || [ "$changed" -eq 1 ]; then
  echo "setup: installing Debian packages: ${missing[*]:-none}"
  apt_update
  rest=()
  for p in "${missing[@]}"; do [ "$p" = qemu-system-arm ] || rest+=("$p"); done
  if [ "${#rest[@]}" -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends "${rest[@]}"
  fi
  if [ "$old_qemu" -eq 1 ]; then
    release=()
    [ "$CODENAME" = bookworm ] && release=(-t bookworm-backports)
    echo "setup: installing qemu-system-arm${release[*]:+ ${release[*]}} (QEMU >= $QEMU_MAJOR)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends "${release[@]}" qemu-system-arm
  fi
fi
have_qemu=$(qemu_major || true)
if [ -z "$have_qemu" ] || [ "$have_qemu" -lt "$QEMU_MAJOR" ]; then
  echo "setup: qemu-system-arm is '${have_qemu:-missing}', QEMU $QEMU_MAJOR or later is needed" >&2
  exit 1
fi
# the emulated boards' busybox and the SSH image's dropbear are built from these
# source packages (rprockit.initramfs)
for src in busybox dropbear; do
  [ -n "$(apt-cache showsrc "$src" 2>/dev/null | sed -n 's/^Version: //p')" ] \
    || { echo "setup: no deb-src entry resolves the $src source package ($LIST); run apt-get update" >&2; exit 1; }
done

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
echo "setup: done ($(qemu-system-arm --version | head -1)). Activate with: . .venv/bin/activate"
