#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ under afl.rs for FUZZ_SECONDS each, one at a time,
# and prints per target: seconds, executions, executions/s, corpus size, crashes, hangs.
#
#   scripts/fuzz.sh                 # every target, FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=5 scripts/fuzz.sh  # the smoke run of `make test`
#   scripts/fuzz.sh jwt webhook     # some targets
#
# Installs cargo-afl (pinned) and builds AFL++ when they are missing. Each run starts
# from the committed seeds (fuzz/corpus/<target>/) and writes fuzz/out/<target>/;
# a crash fails the script and names the input that caused it (replay it with
# `fuzz/target/<host triple>/release/<target> < <file>`). FUZZ_NICE (default 19) is the niceness.
# The table is also written to fuzz/out/summary.txt.
set -euo pipefail

cd "$(dirname "$0")/.."
readonly CARGO_AFL_VERSION=0.18.2
readonly SECONDS_EACH=${FUZZ_SECONDS:-60}
readonly NICENESS=${FUZZ_NICE:-19}
# An input slower than this is a hang (saved, not a crash); `+` skips a seed that is,
# rather than aborting, on a machine loaded by other builds.
readonly TIMEOUT_MS=${FUZZ_TIMEOUT_MS:-1000}
# Built for the host triple named explicitly, so that cargo-afl's flags (instrumentation,
# opt-level 3, one codegen unit) reach the code under test only: build scripts and proc
# macros (serde's, wit-bindgen's) are built as usual: half the CPU time of a clean build
# (245 s of user time against 511 s, measured here).
HOST_TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
readonly HOST_TRIPLE
# Where cargo puts the instrumented binaries (CARGO_TARGET_DIR, as cargo reads it).
readonly BIN_DIR="${CARGO_TARGET_DIR:-fuzz/target}/$HOST_TRIPLE/release"
readonly ALL_TARGETS=(jwt webhook practice_event demo monitoring requests http variables)
if (($# > 0)); then targets=("$@"); else targets=("${ALL_TARGETS[@]}"); fi

if [[ "$(cargo afl --version 2>/dev/null || true)" != *"$CARGO_AFL_VERSION"* ]]; then
    echo "==> fuzz: installing cargo-afl $CARGO_AFL_VERSION (about 2 minutes, once per machine)"
    cargo install --quiet --locked cargo-afl --version "$CARGO_AFL_VERSION"
fi
# AFL++ is built once per rustc version; `config --build` says so when it already is.
if ! config=$(cargo afl config --build 2>&1) && [[ "$config" != *"already built"* ]]; then
    echo "$config" >&2
    exit 1
fi

echo "==> fuzz: building the instrumented targets ($BIN_DIR)"
(cd fuzz && nice -n "$NICENESS" cargo afl build --release --target "$HOST_TRIPLE" --quiet)

# afl-fuzz's checks of the machine (CPU governor, core_pattern, a free core of its own)
# are for a dedicated fuzzing box; here the targets share the machine.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_FAST_CAL=1

stat() { sed -n "s/^$1 *: *//p" "$2"; }

failed=()
mkdir -p fuzz/out
summary=fuzz/out/summary.txt
printf '%-16s %8s %12s %10s %8s %8s %6s\n' target seconds executions exec/s corpus crashes hangs |
    tee "$summary"
for target in "${targets[@]}"; do
    out="fuzz/out/$target"
    rm -rf "$out"
    mkdir -p "$out"
    # -V stops afl-fuzz after the given seconds; timeout is only a backstop.
    if ! timeout $((SECONDS_EACH + 300)) nice -n "$NICENESS" cargo afl fuzz \
        -i "fuzz/corpus/$target" -o "$out" -V "$SECONDS_EACH" -t "$TIMEOUT_MS+" \
        "$BIN_DIR/$target" >"$out/afl.log" 2>&1; then
        echo "fuzz: afl-fuzz failed on $target; the end of $out/afl.log:" >&2
        tail -20 "$out/afl.log" >&2
        failed+=("$target")
        continue
    fi
    stats="$out/default/fuzzer_stats"
    crashes=$(stat saved_crashes "$stats")
    printf '%-16s %8s %12s %10s %8s %8s %6s\n' "$target" "$(stat run_time "$stats")" \
        "$(stat execs_done "$stats")" "$(stat execs_per_sec "$stats")" \
        "$(stat corpus_count "$stats")" "$crashes" "$(stat saved_hangs "$stats")" | tee -a "$summary"
    if [[ "$crashes" != 0 ]]; then
        find "$out/default/crashes" -type f -name 'id:*' | sed 's/^/    crash: /' >&2
        failed+=("$target")
    fi
done

if ((${#failed[@]} > 0)); then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "==> fuzz: ${#targets[@]} targets, ${SECONDS_EACH} s each, no crash"
