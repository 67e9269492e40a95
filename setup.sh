#!/usr/bin/env bash
# One-time set-up of a Debian 12 machine for rprockit: the Debian packages
# (as root, or through sudo) and a Python virtual environment in .venv.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  git make gcc bc bison flex libssl-dev libelf-dev cpio kmod lzop ccache xz-utils
  device-tree-compiler gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu
  gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm linux-source-6.1
  openssh-server openssh-client python3-venv diffoscope-minimal dropbear-bin redis-server
)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null && SUDO=(sudo) || SUDO=(false)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
armhf=$(dpkg --print-foreign-architectures | grep -c '^armhf$' || true)

if [ "${#missing[@]}" -gt 0 ] || [ "$armhf" -eq 0 ]; then
  if [ "${SUDO[*]}" = false ]; then
    echo "setup: need root to install: ${missing[*]} (and dpkg --add-architecture armhf)" >&2
    exit 2
  fi
  echo "setup: installing Debian packages: ${missing[*]:-none} (+ armhf architecture)"
  "${SUDO[@]}" dpkg --add-architecture armhf
  # After adding a foreign architecture one index can be briefly out of sync
  # ("File has unexpected size ... Mirror sync in progress?") and apt-get update
  # exits 100 although everything needed resolves: retry, then let the install
  # itself be the judge.
  for i in 1 2 3; do
    if "${SUDO[@]}" apt-get update -q; then break; fi
    if [ "$i" -lt 3 ]; then
      echo "setup: apt-get update failed (try $i of 3); retrying" >&2
      sleep $((i * 5))
    else
      echo "setup: apt-get update still fails; going on: the install below decides" >&2
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends "${missing[@]}"
  fi
  # the initramfs of the emulated board needs the armhf busybox: check it resolves
  apt-cache show busybox-static:armhf >/dev/null 2>&1 \
    || { echo "setup: busybox-static:armhf cannot be found after apt-get update" >&2; exit 1; }
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
echo "setup: done. Activate with: . .venv/bin/activate"
