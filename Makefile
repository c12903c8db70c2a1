# The README's two commands: `make demo` runs the main job, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-deploy lint typecheck bench clean web-build web-test web-check web-app

# Reinstalls only when the project's metadata changed; the install is editable,
# so source edits need nothing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) web-app
	$(BIN)/python -m opseal.client.demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy needs the packages under their import names; the folders on disk are crypto/, server/...
TYPECHECK := build/typecheck
PACKAGES := crypto client server migrations wire
typecheck: $(STAMP)
	mkdir -p $(TYPECHECK)/opseal
	for d in $(PACKAGES); do ln -sfn "$(CURDIR)/$$d" $(TYPECHECK)/opseal/$$d; done
	cd $(TYPECHECK) && "$(CURDIR)/$(BIN)/mypy" --config-file "$(CURDIR)/pyproject.toml" \
		$(foreach d,$(PACKAGES),-p opseal.$(d))

# The browser client (web/, design §17): `npm ci` from the committed lock file when
# node_modules is missing or older than the lock (no install scripts, no browser download),
# then tsc compiles the sources, the tests and the tools into web/build.
WEB_STAMP := web/node_modules/.installed
$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(WEB_STAMP)

# tsc compiles when a source is newer than its last run; then esbuild-wasm bundles the app
# into the Python package (server/web-app, shipped in the wheel), deterministically: the same
# sources give the same bundle hash (design §17).
WEB_TSC := web/build/.compiled
WEB_APP := server/web-app/manifest.json
WEB_SOURCES := $(shell find web/src web/app web/test web/tools web/e2e -type f 2>/dev/null) web/tsconfig.json
$(WEB_TSC): $(WEB_STAMP) $(WEB_SOURCES)
	cd web && node_modules/.bin/tsc -p tsconfig.json
	touch $(WEB_TSC)

$(WEB_APP): $(WEB_TSC)
	cd web && node build/tools/bundle.js

web-build: $(WEB_APP)

# The app for `make demo`: built when node is present and the bundle is missing or stale.
web-app:
	@if command -v node >/dev/null; then $(MAKE) --no-print-directory web-build; \
	elif [ ! -f $(WEB_APP) ]; then echo "WARNING: node is missing: the web app is not built (opseal-server serves no page at /)" >&2; fi

# The TypeScript suite: every cross-language vector of web/test/vectors.json.
web-test: web-build
	cd web && node --test build/test/

# Without Node.js the web suite cannot run: said plainly, and a failure under CI (.ci/run).
web-check:
	@if command -v node >/dev/null; then $(MAKE) --no-print-directory web-build; \
	elif [ -n "$$CI" ]; then echo "FAIL: node is missing, the web client's tests cannot run" >&2; exit 1; \
	else echo "WARNING: node is missing: the web client's tests (make web-test) are NOT run" >&2; fi

# Tests run on every core (pytest-xdist); each test has its own database and loopback port.
# The web build comes first so that the Python suite also verifies what TypeScript produces;
# the TypeScript suite runs after pytest.
PYTEST_WORKERS ?= auto
test: lint typecheck web-check
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
	@if command -v node >/dev/null; then cd web && node --test build/test/; fi

# nginx in front of two nodes on PostgreSQL and S3 (moto), under load with a node killed
# (tests/deploy/; needs nginx and OPSEAL_TEST_POSTGRES_URL, as .ci/run provides). Minutes.
test-deploy: $(STAMP)
	$(BIN)/python -m pytest -m deploy -s tests/deploy $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/crypto.py
	$(BIN)/python bench/server.py
	$(BIN)/python bench/submit.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/replay.py

clean:
	rm -rf $(VENV) var build *.egg-info web/build web/node_modules server/web-app
