.PHONY: install lint test proto bench demo

install:
	python3 -m pip install -e '.[dev]'

lint:
	python3 -m ruff check .
	bash scripts/typecheck.sh

test:
	python3 -m pytest

proto:
	bash scripts/gen_proto.sh

bench:
	python3 -m benchmarks
	python3 -m benchmarks.embedded_bench
	python3 -m benchmarks.seed_suites all
	python3 benchmarks/cluster_bench.py
	python3 benchmarks/dashboard_bench.py

demo:
	tokengate demo
