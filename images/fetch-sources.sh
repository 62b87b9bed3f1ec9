#!/usr/bin/env bash
# Fetches the OpenSSL and CPython source tarballs named in images/versions.env into
# images/.cache/src/ and checks their sha256 (the Dockerfile checks them again).
#   SOURCE_ORIGIN=upstream  (default) from openssl.org / python.org
#   SOURCE_ORIGIN=debian    the .orig tarballs of Debian's source packages (suite DEBIAN_SOURCE_SUITE),
#                           through this host's own apt configuration and mirror (apt verifies the
#                           signed Sources index; the .orig tarballs are the upstream ones)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
out=$here/.cache/src
mkdir -p "$out"
origin=${SOURCE_ORIGIN:-upstream}

ok() { [ -f "$out/$1" ] && echo "$2  $out/$1" | sha256sum -c --status -; }

from_upstream() {  # file url
  curl -fsSL --retry 3 -o "$out/$1.part" "$2" && mv "$out/$1.part" "$out/$1"
}

from_debian() {  # file package upstream-version
  local mirror
  tmp=$(mktemp -d); chmod 755 "$tmp"; trap 'rm -rf "$tmp"' EXIT
  mirror=$("$here/mirror.sh")
  mkdir -p "$tmp/lists/partial"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $DEBIAN_SOURCE_SUITE main" \
    >"$tmp/sources.list"
  local apt=(-o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$tmp/lists" -o Debug::NoLocking=1)
  apt-get "${apt[@]}" update -qq
  # the Debian revision that carries this upstream version
  # every Debian revision that carries this upstream version (a mirror may lack some)
  local ver
  for ver in $(apt-cache "${apt[@]}" showsrc "$2" | awk -v up="$3" \
        '/^Version:/ {v=$2; sub(/^[0-9]+:/, "", v); if (index(v, up "-") == 1) print $2}'); do
    if (cd "$tmp" && apt-get "${apt[@]}" source --download-only -qq "$2=$ver" >/dev/null 2>&1); then
      mv "$tmp"/"$2"_"$3".orig.tar.?z "$out/$1"
      return 0
    fi
  done
  echo "fetch-sources: no $2 $3 in $DEBIAN_SOURCE_SUITE on this mirror; update images/versions.env" >&2
  return 1
}

fetch() {  # file sha256 package version url
  ok "$1" "$2" && return 0
  echo "fetch-sources: $1 ($origin)" >&2
  if [ "$origin" = debian ]; then from_debian "$1" "$3" "$4"; else from_upstream "$1" "$5"; fi
  ok "$1" "$2" || { echo "fetch-sources: sha256 mismatch for $1" >&2; rm -f "$out/$1"; return 1; }
}

fetch "openssl-$OPENSSL_VERSION.tar.gz" "$OPENSSL_SHA256" openssl "$OPENSSL_VERSION" \
  "https://github.com/openssl/openssl/releases/download/openssl-$OPENSSL_VERSION/openssl-$OPENSSL_VERSION.tar.gz"
fetch "Python-$PYTHON_VERSION.tar.xz" "$PYTHON_SHA256" "python${PYTHON_VERSION%.*}" "$PYTHON_VERSION" \
  "https://www.python.org/ftp/python/$PYTHON_VERSION/Python-$PYTHON_VERSION.tar.xz"
