#!/usr/bin/env bash
# The benchmark harness, in one command (issue 8). From the repository root:
#
#   bash bench/run.sh                    full run (~18 min): every scenario, 5 interleaved 10 s
#                                        repetitions, the table and bench/results/latest.json,
#                                        then the callgrind figure (3 times) with its profile
#   bash bench/run.sh --smoke            CI: ~1 s per scenario (the harness works, every answer
#                                        checked), then the callgrind gate against
#                                        bench/baseline.json (fails when > 5% above it)
#   bash bench/run.sh --gate             the callgrind gate only
#   bash bench/run.sh --update-baseline  measure the callgrind figure 3 times, write the median
#                                        into bench/baseline.json
#   bash bench/run.sh --profile          the callgrind figure and where its instructions go
#   bash bench/run.sh --order            remake link/symbol-order.txt (the code layout list,
#                                        decision 018) from a whole callgrind run, then rebuild
#   bash bench/run.sh [--smoke] -- ARGS  pass ARGS to `bench run` (e.g. --only 1,3 --reps 3)
#
# Builds the gateway and the harness in release mode, installs nginx and valgrind (apt) when
# missing, pins the gateway (and nginx) to core 0 and everything else to core 1, starts
# everything on 127.0.0.1 only and stops it all at the end, on error or on ctrl-c.
#
# Environment: SWITCHBOARD_BENCH_TARGET_DIR — cargo target dir (default: target/, or under
# ~/.cache in CI so that runs from fresh clones reuse the compiled dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
pass=()
while (($#)); do
    case "$1" in
        --smoke) mode=smoke ;;
        --gate) mode=gate ;;
        --update-baseline) mode=baseline ;;
        --profile) mode=profile ;;
        --order) mode=order ;;
        --) shift; pass=("$@"); break ;;
        *) echo "usage: bash bench/run.sh [--smoke|--gate|--update-baseline|--profile|--order] [-- ARGS]" >&2; exit 2 ;;
    esac
    shift
done

say() { printf 'bench/run.sh: %s\n' "$*" >&2; }

if [[ -n "${SWITCHBOARD_BENCH_TARGET_DIR:-}" ]]; then
    export CARGO_TARGET_DIR="$SWITCHBOARD_BENCH_TARGET_DIR"
elif [[ -n "${CI:-}" && -z "${CARGO_TARGET_DIR:-}" ]]; then
    export CARGO_TARGET_DIR="$HOME/.cache/switchboard-bench-target"
fi
target_dir="${CARGO_TARGET_DIR:-target}"

# Tools: nginx (the reverse-proxy floor) and valgrind (the gate), from Debian's packages.
need=()
if [[ "$mode" == full || "$mode" == smoke ]] && [[ ! -x /usr/sbin/nginx ]] && ! command -v nginx >/dev/null; then
    need+=(nginx)
fi
if ! command -v valgrind >/dev/null; then
    need+=(valgrind)
fi
if ((${#need[@]})); then
    say "installing ${need[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || {
        apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
    }
fi

# Enough open files for scenario 6 (10,000 relayed streams = 20,000 sockets in the gateway).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "open files limit: $(ulimit -n)"

say "building the gateway and the harness (cargo build --release; the first build takes minutes)"
started=$SECONDS
# Apart, not together: built together, the harness's features of shared dependencies would
# change the gateway's build (and its symbol names, which the code layout list names).
cargo build --release -p switchboard
cargo build --release -p bench
say "build took $((SECONDS - started)) s"

bench_bin="$target_dir/release/bench"
pin=()
if (($(nproc) >= 2)) && command -v taskset >/dev/null; then
    pin=(taskset -c 1)
fi

child=""
cleanup() {
    if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# Runs the harness in the background (so the traps above can stop it) and waits for it.
bench() {
    "${pin[@]}" "$bench_bin" "$@" &
    child=$!
    local rc=0
    wait "$child" || rc=$?
    child=""
    return "$rc"
}

case "$mode" in
    smoke)
        started=$SECONDS
        bench run --smoke --out bench/results/smoke.json "${pass[@]}"
        say "smoke run took $((SECONDS - started)) s"
        started=$SECONDS
        bench callgrind
        say "callgrind gate took $((SECONDS - started)) s"
        ;;
    full)
        bench run "${pass[@]}"
        if [[ -z "${SWITCHBOARD_BENCH_NO_GATE:-}" ]]; then
            bench callgrind --repeat 3 --profile 30
        fi
        ;;
    gate) bench callgrind ;;
    profile) bench callgrind --profile 40 ;;
    baseline) bench callgrind --repeat 3 --update-baseline ;;
    order)
        bench callgrind --write-order link/symbol-order.txt
        say "rebuilding with the new code layout"
        cargo build --release -p switchboard
        ;;
esac
