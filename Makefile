# redpss -- the targets developers and CI both run.
#   make run    a demo instance on the embedded dictionary, started and shown working
#   make test   lint, types and every test tier that can run here
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REDHOME ?= $(CURDIR)/var/app/redsys
INSTANCE ?= demo
PYTEST_ARGS ?=
# Debian packages the test tiers need (lua, openssh-server, docker.io, python3 for the clients
# the security tier runs as nobody …).
DEB_PACKAGES ?= lua5.1 lua5.4 lua-socket openssh-server docker.io debootstrap chromium python3 iproute2

export REDHOME

.PHONY: install install-system sysdeps run demo-stop lint typecheck test test-unit test-integration test-faults test-security test-exasol \
	bench clean images up down logs ps test-container

install: $(VENV)/.installed

# The editable install is setuptools' "compat" mode: a plain path in a .pth file. The default
# mode imports an import-hook module at every interpreter start (~10 ms of CPU for each redctl
# call and each health check: bench/health_check.py); a release or image installs a wheel and
# pays neither. Should a future setuptools drop "compat", the default mode is used instead.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=compat \
	    2>$(VENV)/compat-install.log \
	  || { echo "make install: the compat editable install failed (its errors:" \
	         "$(VENV)/compat-install.log); installing in the default editable mode" >&2; \
	       $(BIN)/pip install --quiet -e '.[dev]'; }
	touch $@

# Installs the Debian packages of DEB_PACKAGES that are missing (as root; else says what to do).
sysdeps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "as root, run: apt-get install -y$$missing"; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	fi

# Creates the demo instance once, initialises its dictionary, starts it (or leaves it running),
# and prints its status. Running it twice is harmless.
run: install
	@set -e; export REDENV=$(INSTANCE); \
	if [ ! -f "$(REDHOME)/env/$(INSTANCE)/etc/red_params.conf" ]; then \
	  $(BIN)/redsysctl create $(INSTANCE); fi; \
	$(BIN)/redctl db init; \
	$(BIN)/redctl db apply conf/demo-definitions.toml; \
	if $(BIN)/redctl status >/dev/null; then echo "instance $(INSTANCE) is already running"; \
	else $(BIN)/redctl start >/dev/null || true; fi; \
	$(BIN)/redctl status; rc=$$?; \
	echo; echo "Try next:"; \
	echo "  export REDHOME=$(REDHOME)"; \
	echo "  eval \"\$$($(BIN)/redsysctl env $(INSTANCE))\"   # switch to the instance (REDENV, PATH)"; \
	echo "  redctl status; redctl -h                # roles, heartbeats; every command"; \
	echo "  printf 'ID,AMOUNT\\n1,9.99\\n' > \$$REDENV_HOME/data/input/sales_1.csv"; \
	echo "  redctl list_db_jobs; redctl show         # the watcher loaded it (data/archive)"; \
	echo "  kill -9 <pid of jmon>; redctl status     # supervisord restarts it, RESTARTS shows 1"; \
	echo "  tail -f \$$REDENV_HOME/log/*.log          # what the roles do"; \
	echo "  redctl stop                             # or: make demo-stop"; \
	exit $$rc

demo-stop: install
	REDENV=$(INSTANCE) $(BIN)/redctl stop

# Lays out $(REDHOME)/{bin,etc,lib,log,tmp} with redsysctl, redctl, restctl, redftp_* in bin/
# (what conf/redsys.service calls). SOURCE=path also installs that tree's build as current.
install-system: install
	$(BIN)/redsysctl install $(if $(SOURCE),--from $(SOURCE))

lint: install
	$(BIN)/ruff check redpss tests bench
	$(BIN)/ruff format --check redpss tests bench

typecheck: install
	$(BIN)/mypy

test: lint typecheck sysdeps
	$(BIN)/pytest -m "unit or integration or faults or security or container or exasol" $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

test-integration: install sysdeps
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

test-faults: install sysdeps
	$(BIN)/pytest -m faults $(PYTEST_ARGS)

test-security: install sysdeps
	$(BIN)/pytest -m security $(PYTEST_ARGS)

# The exasol tier: every test against each image of REDPSS_EXASOL_IMAGES, one database after the
# other, as the non-DBA dictionary user REDPSS_DICT (tests/exasol/conftest.py). The version matrix:
#   make test-exasol REDPSS_EXASOL_IMAGES="exasol/docker-db:7.1.30 exasol/docker-db:2025.1.8"
# Skips (and says why) only when no Docker engine answers or an image cannot be pulled.
test-exasol: install
	REDPSS_EXASOL_IMAGES="$(REDPSS_EXASOL_IMAGES)" $(BIN)/pytest -m exasol $(PYTEST_ARGS)

bench: install
	@set -e; for b in bench/*.py; do [ -e "$$b" ] || continue; $(BIN)/python "$$b"; done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache

# --- container mode (docs/containers.md) ----------------------------------------------------
# LOCAL_BASE=1: build on a local Debian base (debootstrap + docker import) with the sources from
# Debian's source packages, for hosts that reach no registry; else the UBI 8 default of
# images/versions.env (REDPSS_BASE_IMAGE overrides it). The UBI path needs a registry and has not
# been built by CI: docs/containers.md, "Building on UBI 8".
LOCAL_BASE ?= 0
ROLE ?=
# the engine: $$DOCKER_HOST, else the system's, else a private dockerd (images/engine.sh);
# where the docker CLI has no compose plugin, the virtualenv's Compose v2 becomes it (a link in
# $DOCKER_CONFIG/cli-plugins), so that `docker compose -p red_tst1 logs sched` works as documented
WITH_ENGINE = export DOCKER_HOST="$$(images/engine.sh host)" || exit 1; \
	docker compose version >/dev/null 2>&1 || { plugins="$${DOCKER_CONFIG:-$$HOME/.docker}/cli-plugins"; \
	  mkdir -p "$$plugins" && ln -sf "$(abspath $(BIN))/docker-compose" "$$plugins/docker-compose"; }; \
	if [ "$(LOCAL_BASE)" = 1 ]; then export REDPSS_BASE_IMAGE=redpss-base:bookworm \
	  SOURCE_ORIGIN=debian DOCKER_BUILD_NETWORK=host; fi;

images: install
	@set -e; $(WITH_ENGINE) if [ "$(LOCAL_BASE)" = 1 ]; then images/base.sh; fi; \
	PYTHON=$(BIN)/python images/build.sh all

# builds the images if missing, creates the instance (container mode) if missing, starts it
up: install
	@set -e; $(WITH_ENGINE) \
	docker image inspect redpss-runtime:latest redpss-sftp:latest >/dev/null 2>&1 \
	  || $(MAKE) --no-print-directory images; \
	if [ ! -f "$(REDHOME)/env/$(INSTANCE)/etc/red_params.conf" ]; then \
	  $(BIN)/redsysctl create $(INSTANCE) --compose; fi; \
	$(BIN)/redsysctl compose $(INSTANCE) >/dev/null; \
	$(BIN)/redsysctl start $(INSTANCE); $(BIN)/redsysctl status $(INSTANCE)

down: install
	@$(WITH_ENGINE) $(BIN)/redsysctl stop $(INSTANCE)

# docker compose with the instance's env file and override (redsysctl compose INSTANCE ARGS)
logs: install
	@$(WITH_ENGINE) $(BIN)/redsysctl compose $(INSTANCE) logs --no-color $(ROLE)

ps: install
	@$(WITH_ENGINE) $(BIN)/redsysctl compose $(INSTANCE) ps --all

test-container: install
	$(BIN)/pytest -m container $(PYTEST_ARGS)
