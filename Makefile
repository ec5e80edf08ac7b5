# The two commands: `make run` serves ClaudeBench at http://127.0.0.1:3000/, `make test` tests it.
# Both create .venv and install the project on first use; nothing else needs to be installed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cb-installed
ARGS ?=
B ?=

.DEFAULT_GOAL := help
.PHONY: help install run test chromium bench lint engines-start engines-stop engines-status clean clean-data

help:
	@echo "make run          start everything (embedded PostgreSQL and Valkey, web, workers); Ctrl-C stops"
	@echo "make test         ruff, then pytest; extra pytest arguments: make test ARGS='-k lease -x'"
	@echo "make bench        load test; arguments: make bench B='--help'"
	@echo "make lint         ruff only"
	@echo "make engines-start|engines-stop|engines-status   the embedded servers alone"
	@echo "make clean        remove caches and the install stamp (keeps .venv and .data)"
	@echo "make clean-data   stop the embedded servers and delete .data (all local state)"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -e '.[test]' </dev/null
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(PY) manage.py up

test: $(STAMP) chromium
	$(PY) -m ruff check .
	$(PY) -m pytest $(ARGS)

# The browser tests drive Debian's chromium (never a Playwright download); installed here when
# missing and we are root, otherwise those tests fail saying how to get it.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update && apt-get install -y chromium chromium-driver); } || echo "chromium is missing (apt-get install chromium chromium-driver): the browser tests will fail"

bench: $(STAMP)
	$(PY) manage.py bench $(B)

lint: $(STAMP)
	$(PY) -m ruff check .

engines-start engines-stop engines-status: engines-%: $(STAMP)
	$(PY) -m claudebench.engines $*

# The next run or test reinstalls the project into .venv; `rm -rf .venv` for a fresh environment.
clean:
	rm -rf $(STAMP) .pytest_cache .ruff_cache build dist *.egg-info
	find . \( -path ./$(VENV) -o -path ./.data \) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

clean-data:
	@if [ -x $(PY) ]; then $(PY) -m claudebench.engines stop; fi
	rm -rf .data
