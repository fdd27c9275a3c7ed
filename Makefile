# The README's two commands: `make run` and `make test`. Everything else here serves them.
# The distribution's CPython 3.11 first, where it can make a venv: Debian's is linked statically and built with
# profile-guided optimization, and ran the gateway on ~17 % less CPU a request than a default pyenv build of
# 3.11 (a shared libpython, unoptimized) on the same machine (ADR 0024). Else python3.11, else python3.
PYTHON ?= $(shell for candidate in /usr/bin/python3.11 python3.11 python3; do \
	command -v $$candidate >/dev/null 2>&1 && $$candidate -c 'import ensurepip' 2>/dev/null \
	&& { command -v $$candidate; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test install lint typecheck format lock migrate worker beat clean

$(VENV)/.installed: requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $@

# The official JS SDKs for tests/gateway/test_js_sdks.py (tests/js/package-lock.json), when npm is here: without
# it `make run` still works, and that test skips (fails in CI, where .ci/run installs Node).
JS_TESTS := tests/js
$(JS_TESTS)/node_modules/.installed: $(JS_TESTS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(JS_TESTS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the JS SDK tests will skip (Node 20+ needed)"; fi

install: $(VENV)/.installed $(JS_TESTS)/node_modules/.installed

## make run: install, migrate, load the catalog, create the demo operator and key, start the Stripe double
## (localstripe, when no STRIPE_SECRET_KEY is set), serve on 127.0.0.1:$(PORT)
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py catalog_load
	$(PY) manage.py demo_setup --port $(PORT)
	$(PY) manage.py stripe_double --site http://127.0.0.1:$(PORT)
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

## make test: lint, type-check, then the whole suite (PostgreSQL/Redis tests run when DATABASE_URL/REDIS_URL are set)
test: install lint typecheck
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

## make typecheck: mypy over the apps ([tool.mypy] in pyproject.toml; the Django plugin reads config.settings)
typecheck: install
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## make lock: re-pin requirements.lock from pyproject.toml's lower bounds
lock: install
	$(PY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile --quiet --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
		-o requirements.lock pyproject.toml

migrate: install
	$(PY) manage.py migrate --noinput

worker: install
	$(VENV)/bin/celery -A config worker --loglevel INFO

beat: install
	$(VENV)/bin/celery -A config beat --loglevel INFO

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache staticfiles

## make bench: measure the gateway against a mock upstream (bench/README.md), e.g.
##   make bench BENCH_ARGS="--database-url postgres://postgres@127.0.0.1:5432/hyperinfer_bench --redis-url redis://127.0.0.1:6379/3"
.PHONY: bench
bench: install
	$(PY) -m bench.run $(BENCH_ARGS)
