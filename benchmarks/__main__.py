"""``python -m benchmarks``: the benchmark harness (see :mod:`benchmarks.harness`)."""

from benchmarks.harness import main

raise SystemExit(main())
