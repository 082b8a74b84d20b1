"""The seed's mixed operations on TokenGate: list work, string work and a blob writer."""

import os
import tempfile

from tokengate import OperationsCoordinator, task_token_guard


@task_token_guard(operation_type="list_process", tags={"weight": "medium"})
def moderate_operation(size):
    """Medium: build a list and keep the multiples of three."""
    doubled = [i * 2 for i in range(size)]
    return sum(x for x in doubled if x % 3 == 0)


@task_token_guard(operation_type="string_ops", tags={"weight": "light"})
def string_operation(length):
    """Light: a few string transformations."""
    text = "test" * length
    return len(text.upper().replace("T", "X").split("X"))


@task_token_guard(
    operation_type="write_blob_moderate",
    tags={"weight": "medium", "storage_speed": "fast"},  # tiers are case-insensitive
)
def write_blob_moderate(path, size_kb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    blob = b"x" * (size_kb * 1024)
    with open(path, "wb") as handle:
        handle.write(blob)
    return {"path": path, "bytes": len(blob)}


def main():
    folder = tempfile.mkdtemp(prefix="tokengate-mixed-")
    with OperationsCoordinator():
        tokens = [moderate_operation(1_000 + i) for i in range(20)]
        tokens += [string_operation(50 + i) for i in range(20)]
        tokens += [write_blob_moderate(os.path.join(folder, f"blob_{i}.bin"), 4) for i in range(20)]
        results = [token.get(timeout=30) for token in tokens]
    print(f"mixed operations: {len(results)} results, first {results[0]}, last {results[-1]}")


if __name__ == "__main__":
    main()
