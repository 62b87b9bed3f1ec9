#!/bin/sh
# The package-manager differences between the supported bases, in one place:
#   pkg.sh install build|runtime|sshd   install a package set (UBI: microdnf/dnf, Debian: apt-get)
#   pkg.sh cafile                       print the system CA bundle path
# Each set names the same needs in both families; the package lists are cleaned afterwards.
set -eu
if command -v apt-get >/dev/null 2>&1; then family=debian
elif command -v microdnf >/dev/null 2>&1; then family=ubi; dnf=microdnf
elif command -v dnf >/dev/null 2>&1; then family=ubi; dnf=dnf
else echo "pkg.sh: neither apt-get nor (micro)dnf found" >&2; exit 1; fi

packages() {
  case "$family:$1" in
    debian:build) echo gcc make libc6-dev perl pkg-config xz-utils ca-certificates \
      zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev uuid-dev ;;
    ubi:build) echo gcc make glibc-devel perl-interpreter perl-IPC-Cmd perl-FindBin perl-File-Compare \
      perl-File-Copy perl-Time-Piece pkgconf-pkg-config tar gzip xz ca-certificates \
      zlib-devel libffi-devel bzip2-devel xz-devel sqlite-devel libuuid-devel findutils ;;
    debian:runtime) echo ca-certificates zlib1g libffi8 libbz2-1.0 liblzma5 libsqlite3-0 libuuid1 \
      passwd ;;
    ubi:runtime) echo ca-certificates zlib libffi bzip2-libs xz-libs sqlite-libs libuuid \
      shadow-utils ;;
    debian:sshd) echo openssh-server passwd ;;
    ubi:sshd) echo openssh-server shadow-utils ;;
    *) echo "pkg.sh: unknown package set $1" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  install)
    set -- $(packages "$2")
    if [ "$family" = debian ]; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
      rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
    else
      $dnf install -y --nodocs "$@" >/dev/null
      $dnf clean all >/dev/null
    fi ;;
  cafile)
    for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
      [ -f "$f" ] && { echo "$f"; exit 0; }
    done
    exit 1 ;;
  *) echo "usage: pkg.sh install build|runtime|sshd | cafile" >&2; exit 2 ;;
esac
