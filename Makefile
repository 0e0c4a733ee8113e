# The daily loop. The README's Quick start is the canonical way in; these are shortcuts.
PY := .venv/bin/python
PG_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/andon_test
REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: install run test test-fast test-pg lint types db-upgrade bench ci

install:
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]'

run:
	.venv/bin/andon dev

test:
	$(PY) -m pytest -n auto

test-fast:
	$(PY) -m pytest -n auto -m "not slow"

test-pg:
	ANDON_DATABASE_URL=$(PG_URL) ANDON_REDIS_URL=$(REDIS_URL) $(PY) -m pytest -n auto

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

types:
	.venv/bin/mypy -p andon && .venv/bin/mypy tests

db-upgrade:
	.venv/bin/andon db upgrade

# Ingress throughput on PostgreSQL + Redis (see benchmarks/README.md); writes benchmarks/ingress/results/latest.json.
bench:
	$(PY) -m benchmarks.ingress.run --label latest

ci:
	bash .ci/run
