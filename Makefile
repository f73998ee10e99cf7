# The two README commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8080
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test test-fast lint fmt docs migrations-check venv venv-dev clean

# Stamp files: reinstall only when a requirements file changes.
$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PIP) install -q -r requirements-dev.txt
	touch $@

# The MD5 lane kernel for S3 ETags (storage/md5.py). Without a C compiler the build says so
# and the server hashes with hashlib instead; under CI=true that is an error.
MD5LANES := storage/native/libmd5lanes.so
$(MD5LANES): storage/native/md5lanes.c storage/native/build.py
	$(PYTHON) storage/native/build.py $(if $(filter true,$(CI)),--require)

venv: $(VENV)/.runtime
venv-dev: $(VENV)/.dev

run: $(VENV)/.runtime $(MD5LANES)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	PORT=$(PORT) $(PY) manage.py serve

# pytest exits 5 when no test was selected: make fails on that as on any failure, so a
# PYTEST_ARGS that matches nothing is never green.
test: $(VENV)/.dev $(MD5LANES)
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything but the tests marked slow (server processes, external servers, a browser,
# racing worker processes, or more than a few seconds): the quick loop while editing.
test-fast: $(VENV)/.dev $(MD5LANES)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The documentation site (docs/, mkdocs.yml) on http://127.0.0.1:8000/, rebuilt on every save:
# the address SIMPLETUNER_DOCS_URL defaults to, so the setup hints' links work locally.
docs: $(VENV)/.dev
	$(VENV)/bin/mkdocs serve

migrations-check: $(VENV)/.runtime
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache $(MD5LANES)
