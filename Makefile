# Everyday verbs. `make run` and `make test` are the README's two set-up commands: each builds
# the virtualenv on first use, so a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint install fuzz bench translations screenshots

$(BIN)/coalition: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/coalition

# The platform on the embedded default: SQLite under instance/, jobs in-process, demo data on
# first start (its credentials are printed and kept in instance/demo-credentials.json).
run: install
	$(BIN)/coalition db upgrade
	$(BIN)/coalition demo
	@echo "Coalition is starting on http://$(HOST):$(PORT)/ (sign-ins above). Its three faces:"
	@echo "  members     http://$(HOST):$(PORT)/me"
	@echo "  merchants   http://$(HOST):$(PORT)/portal"
	@echo "  operator    http://$(HOST):$(PORT)/ops"
	@echo "  API docs    http://$(HOST):$(PORT)/api/v1/docs"
	$(BIN)/coalition serve --host $(HOST) --port $(PORT)

# The whole suite, on PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379), with the core
# also on SQLite. Override with TEST_POSTGRES_URL and TEST_REDIS_URL.
test: install
	$(BIN)/pytest

# The API against its OpenAPI document alone (Schemathesis with real tokens, QUALITY S6), deeper
# than `make test` runs it: `make fuzz EXAMPLES=500`.
EXAMPLES ?= 50
fuzz: install
	CONTRACT_MAX_EXAMPLES=$(EXAMPLES) $(BIN)/pytest -m contract

# lint-imports checks the import rules in pyproject.toml's [tool.importlinter]; a broken one is
# reported under its name, which states the rule.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

# QUALITY.md §1's harness (bench/run.py): pgbench, the platform under wrk, settlement; prints a
# table and writes bench/results.json. Needs wrk and pgbench; QUICK=1 is the toy-size run.
bench: install
	$(BIN)/python bench/run.py $(if $(QUICK),--quick)

# The pages' strings (Flask-Babel): extract every wrapped string into messages.pot, merge it into
# each language's catalogue (translate what is new in coalition/translations/ru/...po), compile.
CATALOGUE := coalition/translations
translations: install
	$(BIN)/pybabel extract -F $(CATALOGUE)/babel.cfg -k _l -o $(CATALOGUE)/messages.pot --no-location --sort-output coalition merchants settlement webhooks draws rewards insights
	$(BIN)/pybabel update -i $(CATALOGUE)/messages.pot -d $(CATALOGUE) --no-fuzzy-matching
	$(BIN)/pybabel compile -d $(CATALOGUE)

# The README's screenshots of each face (docs/screenshots/*.png), remade from a scratch demo.
screenshots: install
	$(BIN)/python docs/screenshots/take.py
