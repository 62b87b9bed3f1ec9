#!/usr/bin/env bash
# Makes a local Debian base image for hosts that cannot pull one (no registry reachable):
#   images/base.sh [NAME]        default NAME: redpss-base:bookworm
# debootstrap --variant=minbase, then `docker import`. The Debian mirror is the one this host's apt
# already uses (read from /etc/apt/sources.list*), so no host name lives in the project.
# Does nothing when the image exists.
set -euo pipefail
name=${1:-redpss-base:bookworm}
suite=${BASE_SUITE:-bookworm}
if docker image inspect "$name" >/dev/null 2>&1; then exit 0; fi
here=$(cd "$(dirname "$0")" && pwd)
mirror=$("$here/mirror.sh")
command -v debootstrap >/dev/null || {
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null
}
root=$(mktemp -d /var/tmp/redpss-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "base.sh: debootstrap $suite from $mirror" >&2
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# The image's apt uses the same mirror as the host (with the security suite when the host has it).
tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$name" >/dev/null
echo "base.sh: imported $name" >&2
