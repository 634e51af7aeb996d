# Tacit — every set-up step lives here so a fresh machine needs only Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run install sysdeps sysdeps-test test lint typecheck contracts pytest bench screenshots web-assets clean

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

bench: $(STAMP)
	$(BIN)/python -m bench.vault --notes 10000
	$(BIN)/python -m bench.vault --notes 100000

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

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
