#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 60), one after another.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
#
# Coverage-guided (libFuzzer through cargo-fuzz) on the stable toolchain: `--sanitizer none`
# needs no nightly flag. cargo-fuzz is installed with `cargo install` (into ~/.cargo/bin) when
# it is missing, and reused when present.
#
# Each target starts from its committed seeds in fuzz/corpus/<target>/ (read only: every seed,
# and so every past crash input kept there, is replayed first) and writes what it discovers to
# fuzz/work/<target>/ (git-ignored). A crash, a timeout or an out-of-memory input fails the
# run; its input is saved under fuzz/artifacts/<target>/ and its path printed.
#
# Environment:
#   SWITCHBOARD_FUZZ_TARGET_DIR  cargo target dir (default fuzz/target). Pointing it outside
#                                the work tree (e.g. ~/.cache/switchboard-fuzz) lets CI runs
#                                from fresh clones reuse the instrumented dependencies.
#   FUZZ_TIMEOUT                 seconds one input may take before it counts as a hang (10).
set -uo pipefail

FUZZ_DIR="$(cd "$(dirname "$0")" && pwd)"
SECS="${1:-60}"
shift || true
ALL_TARGETS=(jsonrpc sse_relay listen sealed_session oauth_state proxy_status config)
if (($# > 0)); then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
CARGO_FUZZ_VERSION=0.13.2
TARGET_DIR="${SWITCHBOARD_FUZZ_TARGET_DIR:-$FUZZ_DIR/target}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TERM_COLOR=never

if ! [[ "$SECS" =~ ^[0-9]+$ ]] || ((SECS < 1)); then
    echo "usage: bash fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked || exit 1
fi
echo "fuzz: $(cargo fuzz --version), $(rustc --version)"

echo "fuzz: building ${#TARGETS[@]} targets (release, sancov instrumentation, no sanitizer)"
(cd "$FUZZ_DIR" && cargo fuzz build --sanitizer none --target-dir "$TARGET_DIR") || {
    echo "fuzz: build failed"
    exit 1
}

BIN_DIR="$TARGET_DIR/$TRIPLE/release"
crashed=0
for t in "${TARGETS[@]}"; do
    corpus="$FUZZ_DIR/corpus/$t"
    work="$FUZZ_DIR/work/$t"
    artifacts="$FUZZ_DIR/artifacts/$t"
    log="$FUZZ_DIR/work/$t.log"
    mkdir -p "$work" "$artifacts"
    if [[ ! -x "$BIN_DIR/$t" || ! -d "$corpus" ]]; then
        echo "fuzz: $t: no such target (binary $BIN_DIR/$t, seeds $corpus)"
        crashed=$((crashed + 1))
        continue
    fi
    before="$(ls -A "$artifacts")"
    # New inputs go to the first directory ($work); the committed seeds are only read.
    "$BIN_DIR/$t" "$work" "$corpus" \
        -max_total_time="$SECS" \
        -timeout="${FUZZ_TIMEOUT:-10}" \
        -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs="$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log" | tail -1)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1)"
    corpus_n="$(find "$corpus" "$work" -type f | wc -l)"
    if ((rc == 0)); then
        echo "fuzz: $t: ok (${runs:-? runs}, ${cov:-cov: ?}, corpus $corpus_n)"
    else
        crashed=$((crashed + 1))
        echo "fuzz: $t: FAILED (exit $rc); from $log:"
        grep -A 6 -m 1 'panicked at' "$log" | sed 's/^/    /'
        echo "    ..."
        tail -n 15 "$log" | sed 's/^/    /'
        input="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
        if [[ -z "$input" ]]; then
            input="$(comm -13 <(echo "$before") <(ls -A "$artifacts") | head -1)"
            [[ -n "$input" ]] && input="$artifacts/$input"
        fi
        echo "fuzz: $t: crash input: ${input:-(none written)}"
        echo "fuzz: $t: reproduce: (cd fuzz && cargo fuzz run --sanitizer none $t ${input:-<input>})"
    fi
done

echo "fuzz: ${#TARGETS[@]} targets, $crashed crashed"
((crashed == 0))
