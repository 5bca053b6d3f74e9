# The two commands of the README: `make demo` (main job) and `make test` (test suite).
# Both bootstrap .venv from requirements/lock.txt on a fresh machine.
.PHONY: setup demo test test-fast lint bench

setup:
	@bash scripts/bootstrap.sh

demo: setup
	.venv/bin/analog-peft demo --out runs/demo

test: setup
	@bash scripts/ensure_test_tools.sh
	ANALOG_PEFT_REQUIRE_BROWSER=1 .venv/bin/python -m pytest -q -ra

test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow"

lint: setup
	.venv/bin/ruff check analog_peft device_models tests benchmarks scripts

bench: setup
	.venv/bin/python benchmarks/run_all.py
