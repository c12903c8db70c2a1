# The README's two commands: `make demo` runs the main job, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-deploy lint typecheck bench clean

# Reinstalls only when the project's metadata changed; the install is editable,
# so source edits need nothing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
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

# Tests run on every core (pytest-xdist); each test has its own database and loopback port.
PYTEST_WORKERS ?= auto
test: lint typecheck
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

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
	rm -rf $(VENV) var build *.egg-info
