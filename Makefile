# The two commands a new user runs:  make demo   and   make test
# Both set up everything they need on a fresh Debian machine (venv, Python packages, Azurite
# from npm, apt packages for the camera and test servers) and skip what is already there.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# apt packages: the GStreamer RTSP server stack plays the camera (demo and tests); Mosquitto
# (+openssl for its throwaway CA) plays edgeHub for the real-SDK twin tests; Chromium opens the
# clip viewer in the browser tests.
DEMO_APT := gstreamer1.0-tools gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly
TEST_APT := $(DEMO_APT) mosquitto openssl chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help demo test lint setup system-deps demo-system-deps python-deps node-deps demo-video \
	docs clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

demo: python-deps node-deps demo-system-deps ## Set up, then run the sample video through the whole product.
	$(BIN)/graffiti-edge demo

test: setup demo-video ## Set up, then lint and run the whole test suite with its real servers.
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: python-deps ## ruff only.
	$(BIN)/ruff check .

setup: python-deps node-deps system-deps

# The end-to-end tests play the demo video. Rendering it (a minute or two, once) here rather
# than inside the first test that needs it keeps that test's timeout about the test itself.
demo-video: python-deps
	$(BIN)/python -m local_run.demo_video

python-deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

node-deps: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Installs the apt packages in $(1) that are missing, and only those.
define apt_install
	@missing=$$(for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing apt packages:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

system-deps:
	$(call apt_install,$(TEST_APT))

demo-system-deps:
	$(call apt_install,$(DEMO_APT))

docs: python-deps ## Regenerate the settings and message references and JSON Schemas in docs/.
	$(BIN)/graffiti-edge config docs --write docs/configuration.md
	$(BIN)/python -m contracts.reference --write docs/messages.md
	for m in camera detector uploader; do \
		$(BIN)/graffiti-edge config schema --module $$m > docs/schemas/$$m.schema.json; done

clean: ## Remove the venv, node_modules and local data.
	rm -rf $(VENV) node_modules data .pytest_cache .ruff_cache
