#!/usr/bin/env bash
# Regenerate the committed gRPC stubs in shared/rpc/ from proto/tokengate.proto.
# The stubs import each other as tokengate.shared.rpc (the installed name of shared/), so
# protoc writes them under a scratch tokengate/shared/rpc/ and they are copied back.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python -m grpc_tools.protoc -Itokengate/shared/rpc=proto --python_out="$out" \
  --grpc_python_out="$out" --pyi_out="$out" tokengate/shared/rpc/tokengate.proto
cp "$out"/tokengate/shared/rpc/tokengate_pb2.py "$out"/tokengate/shared/rpc/tokengate_pb2.pyi \
  "$out"/tokengate/shared/rpc/tokengate_pb2_grpc.py shared/rpc/
