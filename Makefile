# Tacit — every set-up step lives here so a fresh machine needs only Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run install sysdeps sysdeps-test test lint typecheck contracts pytest bench screenshots web-assets clean package lock soak

run: sysdeps $(STAMP)
	$(BIN)/tacit gui

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[gui,server,dev]'
	touch $(STAMP)

sysdeps:
	bash packaging/system-deps.sh

sysdeps-test:
	bash packaging/system-deps.sh --for-tests

test: sysdeps-test lint typecheck contracts pytest

lint: $(STAMP)
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest -q

# The long runs (docs/RELIABILITY.md): the crash, fault and sweep tests of
# tests/reliability with many seeds (TACIT_SOAK_SEED=S replays one), every `soak`-marked
# test (the fuzzers' counts go to $(SOAK_REPORT) and are printed), then the load bench,
# 200 devices for 60 s, on SQLite and PostgreSQL.
SOAK_RUNS ?= 10
SOAK_REPORT ?= soak-report.jsonl
soak: $(STAMP)
	rm -f $(SOAK_REPORT)
	TACIT_SOAK_RUNS=$(SOAK_RUNS) TACIT_SOAK_OPS=40 TACIT_SOAK_ROUNDS=6 TACIT_SOAK_DEVICES=3 \
		$(BIN)/pytest -q -s -m 'soak or not soak' tests/reliability
	TACIT_FUZZ_REPORT=$(abspath $(SOAK_REPORT)) $(BIN)/pytest -q -m soak --ignore=tests/reliability
	cat $(SOAK_REPORT)
	$(BIN)/python -m bench.load --devices 200 --seconds 60 --json

bench: $(STAMP)
	$(BIN)/python -m bench.vault --notes 10000
	$(BIN)/python -m bench.vault --notes 100000
	$(BIN)/python -m bench.practice --notes 1000

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m app.ui.screenshots --out docs/screenshots

# Rebuild the vendored browser code of the /account page from packaging/web's lock file
# (exact version and integrity hash; install scripts off). Only for maintainers: the
# result is committed, and the server needs no Node.js to run.
WEB_VENDOR = app/sync/server/web/vendor
web-assets:
	cd packaging/web && npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p $(WEB_VENDOR)
	cp packaging/web/node_modules/hash-wasm/dist/argon2.umd.min.js $(WEB_VENDOR)/argon2.umd.min.js
	cp packaging/web/node_modules/hash-wasm/LICENSE $(WEB_VENDOR)/hash-wasm-LICENSE
	cd $(WEB_VENDOR) && sha256sum argon2.umd.min.js hash-wasm-LICENSE > SHA256SUMS

# The one-folder desktop bundle (packaging/tacit.spec) in dist/tacit, built in its own
# venv from the pinned lock file (nothing from dev), then run: --version, selftest, a
# vault with a client and a note, the app offscreen; size and start time reported.
PKG_VENV = .venv-package
PKG_STAMP = $(PKG_VENV)/.installed
package: $(PKG_STAMP)
	bash packaging/system-deps.sh --for-package
	$(PKG_VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN \
		--distpath dist --workpath build/pyinstaller packaging/tacit.spec
	bash packaging/check-bundle.sh dist/tacit

$(PKG_STAMP): pyproject.toml packaging/requirements-package.lock
	test -x $(PKG_VENV)/bin/python || $(PYTHON) -m venv $(PKG_VENV)
	$(PKG_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PKG_VENV)/bin/python -m pip install --quiet --require-hashes -r packaging/requirements-package.lock
	$(PKG_VENV)/bin/python -m pip install --quiet --no-deps .
	touch $(PKG_STAMP)

# Regenerate the pinned lock files (exact versions and hashes, Python 3.11 on Linux)
# after a dependency changes in pyproject.toml. Install from one with
# `pip install --require-hashes -r requirements.lock && pip install --no-deps -e .`.
LOCK = $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --no-emit-index-url \
	--python-version 3.11 --python-platform x86_64-manylinux_2_34
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(LOCK) --extra gui --extra server --extra dev -o requirements.lock
	$(LOCK) --extra gui --extra server --extra package -o packaging/requirements-package.lock
	$(LOCK) --extra server -o packaging/server/requirements-server.lock

clean:
	rm -rf $(VENV) $(PKG_VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
