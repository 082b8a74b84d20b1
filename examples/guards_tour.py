"""A tour of the guards: Guard House auto-block, quarantine and replay, retries, metrics.

    python examples/guards_tour.py
"""

import tempfile
import urllib.request
import zlib

from tokengate import (
    MethodBlockedException,
    OperationsCoordinator,
    TokenQuarantined,
    task_token_guard,
)

attempts = {"count": 0}


@task_token_guard(operation_type="parse_record", tags={"weight": "light"})
def parse_record(text):
    """Fails on bad input: the Guard House learns its failure rate."""
    key, value = text.split("=")
    return {key: int(value)}


@task_token_guard(operation_type="checksum", tags={"weight": "light"}, spike_check=True)
def checksum(blob):
    """Its cost grows with its argument: a huge blob is a spike and is quarantined."""
    return zlib.crc32(blob)


@task_token_guard(operation_type="fetch", tags={"weight": "light"}, retries=3)
def fetch(url):
    """A transient failure (ConnectionError) is retried with backoff, same token."""
    attempts["count"] += 1
    if attempts["count"] < 3:
        raise ConnectionError(f"{url}: connection reset (attempt {attempts['count']})")
    return f"{url}: ok after {attempts['count']} attempts"


def main():
    quarantine_dir = tempfile.mkdtemp(prefix="tokengate-quarantine-")
    with OperationsCoordinator(auto_block=True, min_attempts=4, spike_warmup=5,
                               quarantine_dir=quarantine_dir, metrics_port=0) as coord:
        for text in ("a=1", "b=x", "c=y", "d=z", "e=w"):
            try:
                print("parse_record:", parse_record(text).get(timeout=10))
            except ValueError as exc:
                print("parse_record failed:", exc)
            except MethodBlockedException as exc:
                print("refused at submit:", exc)
        coord.reenable(parse_record)
        print("after re-enable:", parse_record("f=6").get(timeout=10))

        for _ in range(5):
            checksum(b"small").get(timeout=10)
        spike = checksum(bytes(1_000_000))
        try:
            spike.get(timeout=10)
        except TokenQuarantined as exc:
            print("quarantined:", exc)
        print("replayed:", coord.replay_quarantined(spike.token_id).get(timeout=10))

        token = fetch("https://example.invalid/data")
        print(f"fetch: {token.get(timeout=10)} (token {token.token_id}, "
              f"attempt {token.attempt})")

        url = f"http://127.0.0.1:{coord.metrics_port}/metrics"
        metrics = urllib.request.urlopen(url, timeout=10).read().decode()
        print("\n".join(line for line in metrics.splitlines()
                        if line.startswith(("tokengate_tokens_total", "tokengate_guard_house",
                                            "tokengate_quarantined_total"))))
        print("history dumped to", coord.dump_history(f"{quarantine_dir}/history.json"))


if __name__ == "__main__":
    main()
