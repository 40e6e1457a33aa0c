# `make run`: the bot (offline sandbox without BOT_TOKEN, the real bot with it, after migrating its database).
# `make test`: the test-suite.
# `make test-postgres`: the database tests again, on PostgreSQL and Redis (both must be running).
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: run test test-slow test-postgres install bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	@if [ -n "$$BOT_TOKEN" ] || grep -qsE '^BOT_TOKEN=.+' .env; then \
		$(PYTHON) -m bot migrate && $(PYTHON) -m bot run; \
	else \
		$(PYTHON) -m bot sandbox; \
	fi

test: install
	$(PYTHON) -m pytest

test-slow: install
	$(PYTHON) -m pytest -m slow

test-postgres: install
	TEST_BACKEND=postgres $(PYTHON) -m pytest -m database

bench: install
	$(PYTHON) benchmarks/import_accounts.py

clean:
	rm -rf $(VENV) data .pytest_cache
