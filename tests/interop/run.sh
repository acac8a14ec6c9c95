#!/usr/bin/env bash
# Interop test: the official mistralai 3.7.0 Python SDK against the Switchboard gateway.
#
#   bash tests/interop/run.sh            # builds target/debug/switchboard first
#   SWITCHBOARD_BIN=/path/to/switchboard bash tests/interop/run.sh   # use a prebuilt binary
#
# Creates <repo>/.venv-interop (git-ignored) on first use. Exit code = the test's exit code.
# Set INTEROP_VERBOSE=1 for tracebacks and the gateway log.
set -euo pipefail

SDK_VERSION="3.7.0"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/.venv-interop"
py="$venv/bin/python"

# 1. virtualenv with the pinned SDK (pip is skipped when already installed at that version)
if [[ ! -x "$py" ]]; then
    echo "interop: creating $venv" >&2
    python3 -m venv "$venv"
fi
installed="$("$py" -c 'import importlib.metadata as m
try:
    print(m.version("mistralai"))
except m.PackageNotFoundError:
    print("")' 2>/dev/null || true)"
if [[ "$installed" != "$SDK_VERSION" ]]; then
    echo "interop: installing mistralai==$SDK_VERSION into $venv" >&2
    "$py" -m pip install -q --disable-pip-version-check "mistralai==$SDK_VERSION"
fi

# 2. the gateway binary
if [[ -n "${SWITCHBOARD_BIN:-}" ]]; then
    bin="$SWITCHBOARD_BIN"
else
    echo "interop: cargo build --bin switchboard" >&2
    (cd "$repo" && cargo build --bin switchboard)
    target_dir="${CARGO_TARGET_DIR:-$repo/target}"
    [[ "$target_dir" = /* ]] || target_dir="$repo/$target_dir"
    bin="$target_dir/debug/switchboard"
fi
if [[ ! -x "$bin" ]]; then
    echo "interop: gateway binary not found or not executable: $bin" >&2
    exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

# 3. the test (its exit code is ours)
cd "$repo"
set +e
"$py" "$here/test_connectors_sdk.py" --bin "$bin"
rc=$?
set -e
exit "$rc"
