#!/usr/bin/env bash
# Regenerate the committed gRPC stubs in shared/rpc/ from proto/tokengate.proto.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -Ishared/rpc=proto --python_out=. --grpc_python_out=. \
  --pyi_out=. shared/rpc/tokengate.proto
