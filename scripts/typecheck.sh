#!/usr/bin/env bash
# Type-check the whole package with mypy, configured by pyproject.toml's [tool.mypy].
#
# The folders install under one name (shared/ -> tokengate.shared, ...: setuptools'
# package-dir), which mypy cannot map by itself. So this builds that tree out of symbolic
# links in a scratch folder of its own (the same one each run, so mypy's cache under
# .mypy_cache/ stays valid and a run takes seconds), checks `-p tokengate` there, and prints
# each error under the file's path in the repository (tokengate/shared/x.py -> shared/x.py).
# Extra arguments go to mypy (e.g. --no-incremental).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
tree="${TMPDIR:-/tmp}/tokengate-typecheck-$(id -u)-$(printf %s "$root" | cksum | cut -d' ' -f1)"
rm -rf "$tree"
mkdir -p "$tree/tokengate"
for entry in "$root"/tokengate/*; do
    [ "$(basename "$entry")" = __pycache__ ] || ln -s "$entry" "$tree/tokengate/"
done
for dir in shared gateway node_agent dashboard; do
    ln -s "$root/$dir" "$tree/tokengate/$dir"
done
cd "$tree"
status=0
"$python" -m mypy --config-file "$root/pyproject.toml" --cache-dir "$root/.mypy_cache" \
    -p tokengate "$@" > "$tree/report" 2>&1 || status=$?
sed -E -e 's#^tokengate/(shared|gateway|node_agent|dashboard)/#\1/#' "$tree/report"
exit "$status"
