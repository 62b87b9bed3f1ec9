#!/usr/bin/env bash
# Builds the redpss images:   images/build.sh [runtime|sftp|all]    (default: all)
#   BASE_IMAGE      base of both images (default in images/versions.env: UBI 8 minimal)
#   SOURCE_ORIGIN   upstream (default) | debian: where the OpenSSL/CPython tarballs come from
#   REDPSS_IMAGE, REDPSS_SFTP_IMAGE   tags (default redpss-runtime:latest, redpss-sftp:latest)
#   PYTHON          the host Python whose pip builds the redpss wheel (default python3)
# The classic builder is used (DOCKER_BUILDKIT=0); the context is the images/ folder, so sources
# and wheels are prepared into images/.cache/ first (the build itself needs no package index).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=versions.env
. "$here/versions.env"
BASE_IMAGE=${REDPSS_BASE_IMAGE:-$BASE_IMAGE}
runtime_tag=${REDPSS_IMAGE:-redpss-runtime:latest}
sftp_tag=${REDPSS_SFTP_IMAGE:-redpss-sftp:latest}
python=${PYTHON:-python3}
what=${1:-all}
export DOCKER_BUILDKIT=0

args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "REDSYS_UID=$REDSYS_UID"
      --build-arg "REDSYS_GID=$REDSYS_GID" --build-arg "REDFTP_GID=$REDFTP_GID")
# the base's package manager reaches the mirrors the host uses
[ -n "${DOCKER_BUILD_NETWORK:-}" ] && args+=(--network "$DOCKER_BUILD_NETWORK")

# the redpss wheel carries redpss/_build_info.json (commit, build date: redctl version in a
# container); wheels.py writes it into the checkout while it builds and removes it afterwards
wheels() {
  local dir=$here/.cache/wheels
  rm -rf "$dir" "$here/.cache/host-wheels"; mkdir -p "$dir"
  "$python" "$here/wheels.py" "$repo" "$dir" "${PYTHON_VERSION%.*}"
  rm -rf "$here/.cache/host-wheels"
}

if [ "$what" = runtime ] || [ "$what" = all ]; then
  "$here/fetch-sources.sh"
  wheels
  docker build --quiet --force-rm -t "$runtime_tag" -f "$here/runtime/Dockerfile" "${args[@]}" \
    --build-arg "OPENSSL_VERSION=$OPENSSL_VERSION" --build-arg "OPENSSL_SHA256=$OPENSSL_SHA256" \
    --build-arg "PYTHON_VERSION=$PYTHON_VERSION" --build-arg "PYTHON_SHA256=$PYTHON_SHA256" \
    "$here" >/dev/null
  echo "build.sh: $runtime_tag" >&2
fi
if [ "$what" = sftp ] || [ "$what" = all ]; then
  docker build --quiet --force-rm -t "$sftp_tag" -f "$here/sftp/Dockerfile" "${args[@]}" "$here" >/dev/null
  echo "build.sh: $sftp_tag" >&2
fi
# A rebuild leaves the previous image untagged: remove those (only the final images carry the
# label; the build stages' images stay, they are the compile cache of the next build).
docker image prune -f --filter label=org.redpss.image >/dev/null
