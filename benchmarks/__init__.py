"""TokenGate's benchmarks: the harness (``python -m benchmarks``, ``tokengate bench``) and the
older single-purpose scripts (``embedded_bench``, ``cluster_bench``, ``seed_suites``).

Not installed with the package: run from a source checkout.
"""
