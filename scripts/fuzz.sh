#!/usr/bin/env bash
# Coverage-guided fuzzing of mcw's input handling with cargo fuzz (libFuzzer), on the stable
# toolchain (no sanitizer: `-s none`; Rust's own checks and the targets' assertions find the
# bugs). Each target starts from the seeds in fuzz/seeds/<target> plus what earlier runs kept
# in fuzz/corpus/<target>.
#
#   scripts/fuzz.sh                 every target for 30 s
#   scripts/fuzz.sh 20              every target for 20 s (what the test command runs)
#   scripts/fuzz.sh 600             every target for 600 s
#   scripts/fuzz.sh --runs 10000000 every target for 10 million executions
#   scripts/fuzz.sh 60 token        one target
#
# A crash stops the run with libFuzzer's report and the input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=(-max_total_time=30)
case "${1:-}" in
--runs) limit=(-runs="$2"); shift 2 ;;
'') ;;
*) limit=(-max_total_time="$1"); shift ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(template token args answer)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked

cd fuzz
cargo fuzz build -s none
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    start=$(date +%s)
    # libFuzzer prints its progress on stderr; keep the summary lines.
    cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- "${limit[@]}" -print_final_stats=1 \
        2>"target/fuzz-$t.log" || { cat "target/fuzz-$t.log"; exit 1; }
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "target/fuzz-$t.log")
    cov=$(grep -o 'cov: [0-9]*' "target/fuzz-$t.log" | tail -1)
    echo "fuzz $t: $execs executions in $(($(date +%s) - start)) s, $cov, corpus $(ls "corpus/$t" | wc -l) inputs, no crash"
done
