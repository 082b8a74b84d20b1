"""Submit to a running cluster.

    cd examples/cluster
    tokengate up --include shapes --path .          # in one terminal
    python submit.py --token-file .tokengate/token  # in another

The same decorated calls as embedded mode; results are pushed back through the gateway.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import shapes

import tokengate
import tokengate.cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gateway", default="127.0.0.1:50051")
    parser.add_argument("--token-file", default=".tokengate/token")
    args = parser.parse_args()
    token = Path(args.token_file).read_text().strip()
    client = tokengate.connect(args.gateway, token=token)
    try:
        started = time.perf_counter()
        areas = [shapes.area(r) for r in range(1000)]
        print(f"1000 areas, sum {sum(t.get(timeout=30) for t in areas):.1f}, "
              f"in {time.perf_counter() - started:.3f}s")
        counts = [shapes.primes_below(2_000_000) for _ in range(4)]
        for t in counts:
            print(f"primes below 2,000,000: {t.get(timeout=60)} (node {t.node}, core {t.core_id})")
        print(tokengate.cluster.describe_status(client))
    finally:
        client.close()


if __name__ == "__main__":
    main()
