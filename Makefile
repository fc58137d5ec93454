# Two commands on a fresh Debian machine: `make demo` runs the whole loop, `make test` passes the tests.
.PHONY: demo test setup lint typecheck unit integration

VENV := .venv/bin

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/twin demo

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

typecheck: setup
	$(VENV)/mypy core plant connectors models twin bench cli dashboards

test: setup
	@LINETWIN_WITH_BROWSER=1 bash scripts/setup.sh
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy core plant connectors models twin bench cli dashboards
	$(VENV)/pytest -n 2 --dist loadgroup tests

unit: setup
	$(VENV)/pytest -q tests/unit

integration: setup
	$(VENV)/pytest -q tests/integration
