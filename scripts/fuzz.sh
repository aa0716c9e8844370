#!/usr/bin/env bash
# `make fuzz FUZZ_SECONDS=N`: installs clang and its libFuzzer runtime when
# missing, builds the fuzz targets (fuzz/fuzz_*.cpp) with
# -fsanitize=fuzzer,address,undefined in build-fuzz, and runs each for N
# seconds, printing its executions. Seeds: fuzz/corpus/TARGET (read only);
# what the fuzzer learns goes to build-fuzz/corpus/TARGET. A crash is written
# to fuzz/regressions/TARGET/ and fails the run: commit that file, ctest
# replays it in every build (make test, make asan), and fix the bug.
# FUZZ_TARGETS="rpc_line duration" limits the run to some targets.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD:-build-fuzz}
read -r -a targets <<<"${FUZZ_TARGETS:-rpc_line age_decrypt identity config duration dotenv project}"

bash scripts/deps.sh clang libclang-rt-14-dev
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENABLE_FUZZ=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

failed=()
printf '%-12s %12s %8s  %s\n' target executions exec/s result
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "fuzz/regressions/$t"
  log="$build/fuzz_$t.log"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
        -artifact_prefix="fuzz/regressions/$t/")
  [[ -f "fuzz/$t.dict" ]] && args+=(-dict="fuzz/$t.dict")
  result=ok
  if ! "$build/fuzz/fuzz_$t" "${args[@]}" "$build/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
    result=FAILED
    failed+=("$t")
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  printf '%-12s %12s %8s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "$result"
  if [[ $result != ok ]]; then
    grep -E 'ERROR|SUMMARY|fuzz property violated|Test unit written to|uncaught exception' "$log" | head -20 >&2 || true
    for f in $(sed -n 's/.*Test unit written to //p' "$log"); do
      echo "crash input $f (base64, to commit it from a CI log):" >&2
      base64 -w 76 "$f" >&2
    done
  fi
done
if ((${#failed[@]} > 0)); then
  echo "fuzz: crashes in ${failed[*]}; logs in $build/fuzz_TARGET.log, inputs in fuzz/regressions/" >&2
  exit 1
fi
