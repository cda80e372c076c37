# ComputeNet developer entry points. Every target sets up what it needs.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BUF    := .tools/node_modules/.bin/buf
PROTO_FILES := $(wildcard proto/computenet/v1/*.proto)

.PHONY: all demo test chaos bench bench-smoke proto lint buf soak clean bundle bundle-test

all: test

# Debian ships venv's ensurepip separately; as root, install it when venv creation needs it.
$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (ComputeNet needs Python >= 3.11)"; exit 2; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing python3-venv (Debian)"; \
	    apt-get install -y -qq python3-venv >/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }; \
	    $(PYTHON) -m venv $(VENV); \
	  else \
	    echo "error: '$(PYTHON) -m venv' failed; install your distribution's python3-venv package"; exit 2; \
	  fi; }

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

$(BUF):
	@command -v npm >/dev/null 2>&1 || { echo "error: npm not found; install Debian's npm to get buf"; exit 2; }
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@1.75.0

buf: $(BUF)

demo: $(STAMP)
	$(VENV)/bin/computenet demo

# The bundle test (about a minute of wheel building and installing) runs in `make bundle-test`.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup --durations=30 -m "not bundle"

# Every chaos scenario ten times (agents in network namespaces; needs root); `make test` runs
# the short form. Bounded: each scenario waits at most a few minutes and stops by itself.
CHAOS_REPEAT ?= 10
chaos: $(STAMP)
	$(PY) -m pytest -q -m chaos --chaos-repeat $(CHAOS_REPEAT) tests/chaos

bench: $(STAMP)
	$(PY) -m bench.run --out bench/results

bench-smoke: $(STAMP)
	$(PY) -m bench.run --smoke --out bench/results

soak: $(STAMP)
	$(PY) -m bench.run --soak --out bench/results

# The offline install bundle: dist/computenet-offline-VERSION.tar.gz with the agent's wheels for
# this platform (BUNDLE_BROKER=1: the broker's as well), the systemd units and install.sh.
BUNDLE_BROKER ?=
bundle: $(STAMP)
	$(PY) packaging/bundle.py --out dist $(if $(filter 1 yes true,$(BUNDLE_BROKER)),--broker)

# Builds the bundle from a fresh clone and installs it with no package index.
bundle-test: $(STAMP)
	$(PY) -m pytest -q -m bundle tests/packaging

proto: $(STAMP)
	$(PY) -m computenet.codegen --out computenet/v1

lint: $(STAMP) $(BUF)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy computenet broker site_agent topology located_yaml
	cd proto && ../$(BUF) lint
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .tools build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
