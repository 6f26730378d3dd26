#!/usr/bin/env bash
# The whole test suite, as `make test` runs it (and CI, through .ci/run): the lint (rustfmt,
# clippy) beside the build, the unit and engine tests, the acceptance suite on Terraform 1.0.3 and on the newer Terraform at
# the same time, the docs and examples checks; then a table of the phases' times and the
# ten slowest tests. Each acceptance test has its own emulator and fault proxy, so tests
# run side by side (ACC_JOBS at once per Terraform version). Every phase runs even when an
# earlier one failed; the exit code says whether all passed.
#
# Environment (the GNUmakefile sets the first four): TF_ACC_TERRAFORM (Terraform 1.0.3),
# TERRAFORM_NEWER (empty: none), TF_ACC_MOTO, TF_ACC_PLUGIN_MIRROR; ACC_JOBS (default 6);
# SUITE_ONLY=old|newer runs the acceptance suite on one Terraform version only.
# Arguments name the phases to run (lint, build, unit, acceptance, checks); none: all of
# them.
set -uo pipefail
cd "$(dirname "$0")/.."

ACC_JOBS="${ACC_JOBS:-6}"
OUT=target/suite
rm -rf "$OUT" && mkdir -p "$OUT" && touch "$OUT/.started"
# Tests that do not run on this Terraform (or without hashicorp/aws) say so here; the
# suite prints the lines at its end (nextest keeps a passing test's output to itself).
export TF_ACC_SKIPS="$PWD/$OUT/skipped.log"
PHASES=()
FAILED=0

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
# phase NAME SECONDS STATUS
record() { PHASES+=("$1|$2|$3"); }
run_phase() {
  local name="$1"; shift
  local t0; t0=$(now)
  echo "== $name"
  if "$@"; then record "$name" "$(since "$t0")" ok
  else record "$name" "$(since "$t0")" FAILED; FAILED=1; fi
}

have_nextest=0
if cargo nextest --version >/dev/null 2>&1; then have_nextest=1; fi

build() {
  # One build for the binaries the tests run (the provider, docgen) and the test binaries,
  # with the same features (--workspace), so neither rebuilds the other's dependencies.
  cargo build --workspace --bins && cargo test --workspace --no-run --quiet
}

# Clippy checks into a target directory of its own (target/lint), so it runs beside the
# build instead of waiting for its lock: a cold build spends minutes on one crate at a time
# (aws-sdk-ec2), leaving the second core to clippy.
lint() {
  cargo fmt --all -- --check && CARGO_TARGET_DIR=target/lint cargo clippy --all-targets -- -D warnings
}

lint_beside_build() {
  local t0 rc_build=0 rc_lint=0 lint_pid
  t0=$(now)
  echo "== lint (beside the build; log in $OUT/lint.log)"
  ( lint > "$OUT/lint.log" 2>&1; echo $? > "$OUT/lint.rc"; since "$t0" > "$OUT/lint.secs" ) &
  lint_pid=$!
  run_phase "build" build || true
  wait "$lint_pid" || true
  rc_lint=$(cat "$OUT/lint.rc" 2>/dev/null || echo 1)
  grep -v '^\s*Compiling\|^\s*Checking' "$OUT/lint.log" || true
  if [ "$rc_lint" = 0 ]; then record "lint (rustfmt, clippy; beside the build)" "$(cat "$OUT/lint.secs")" ok
  else record "lint (rustfmt, clippy; beside the build)" "$(cat "$OUT/lint.secs" 2>/dev/null || echo 0)" FAILED; FAILED=1; fi
  return 0
}

unit() {
  if [ "$have_nextest" = 1 ]; then
    cargo nextest run --workspace --profile unit \
      -E 'not (package(acceptance-tests) and kind(test))' &&
      cargo test --workspace --doc --quiet
  else
    cargo test --workspace --lib --bins --no-fail-fast && cargo test --workspace --doc
  fi
}

# acceptance PROFILE TERRAFORM: the acceptance suite on one Terraform, its log in $OUT.
acceptance() {
  local profile="$1" tf="$2"
  if [ "$have_nextest" = 1 ]; then
    TF_ACC_TERRAFORM="$tf" cargo nextest run --workspace --profile "$profile" \
      -j "$ACC_JOBS" -E 'package(acceptance-tests) and kind(test)'
  else
    TF_ACC_TERRAFORM="$tf" cargo test --workspace --no-fail-fast --test '*'
  fi
}

both_terraforms() {
  local old="${TF_ACC_TERRAFORM:-.tools/bin/terraform}" newer="${TERRAFORM_NEWER:-}"
  local only="${SUITE_ONLY:-}"
  local pids=() names=() logs=()
  if [ "$only" != newer ]; then
    echo "   $("$old" version 2>/dev/null | head -1) ($old): log in $OUT/acc-old.log"
    acceptance acc-old "$old" > "$OUT/acc-old.log" 2>&1 & pids+=($!); names+=("1.0"); logs+=("$OUT/acc-old.log")
  fi
  if [ "$only" != old ]; then
    if [ -n "$newer" ]; then
      echo "   $("$newer" version 2>/dev/null | head -1) ($newer): log in $OUT/acc-newer.log"
      acceptance acc-newer "$newer" > "$OUT/acc-newer.log" 2>&1 & pids+=($!); names+=("newer"); logs+=("$OUT/acc-newer.log")
    else
      echo "   no newer Terraform found (TERRAFORM_NEWER unset, none on PATH): the acceptance suite runs on v1.0.3 alone"
    fi
  fi
  local rc=0 i
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then rc=1; fi
  done
  for i in "${!logs[@]}"; do
    echo "-- acceptance on Terraform ${names[$i]}:"
    cat "${logs[$i]}"
  done
  return $rc
}

checks() {
  target/debug/docgen --check && "${TF_ACC_TERRAFORM:-.tools/bin/terraform}" fmt -check -recursive -diff examples/
}

[ "$have_nextest" = 1 ] || echo "cargo-nextest not found: tests run with cargo test, one binary at a time (slower)"
PHASES_ASKED=("$@")
want() { [ ${#PHASES_ASKED[@]} -eq 0 ] || [[ " ${PHASES_ASKED[*]} " == *" $1 "* ]]; }
started=$(now)
if want lint && want build; then lint_beside_build
else
  want lint && run_phase "lint (rustfmt, clippy)" lint
  want build && run_phase "build" build
fi
want unit && run_phase "unit and engine tests" unit
want acceptance && run_phase "acceptance (both Terraforms at once)" both_terraforms
want checks && run_phase "docs and examples checks" checks
total=$(since "$started")

if [ -s "$OUT/skipped.log" ]; then
  echo
  echo "== not run here, as the tests said"
  sort -u "$OUT/skipped.log"
fi

echo
echo "== the suite's time"
printf '%-40s %9s  %s\n' phase seconds status
for p in "${PHASES[@]}"; do
  IFS='|' read -r name secs status <<<"$p"
  printf '%-40s %9.1f  %s\n' "$name" "$secs" "$status"
done
printf '%-40s %9.1f\n' "total" "$total"

# The ten slowest tests and the counts, from nextest's JUnit reports.
python3 - "$OUT/.started" <<'EOF'
import glob, os, sys
import xml.etree.ElementTree as ET
rows, passed, failed, skipped = [], 0, 0, 0
for path in sorted(glob.glob("target/nextest/*/junit.xml")):
    profile = path.split(os.sep)[-2]
    if os.path.getmtime(path) < os.path.getmtime(sys.argv[1]):
        continue  # a report of an earlier run
    for case in ET.parse(path).iter("testcase"):
        bad = case.find("failure") is not None or case.find("error") is not None
        if case.find("skipped") is not None:
            skipped += 1
            continue
        failed += bad
        passed += not bad
        rows.append((float(case.get("time", 0)), profile, f"{case.get('classname')} {case.get('name')}"))
rows.sort(reverse=True)
print("\n== the ten slowest tests")
for secs, profile, name in rows[:10]:
    print(f"{secs:8.1f} s  [{profile}] {name}")
print(f"\n(from nextest's reports, doc tests not counted; skipped: {skipped})")
print(f"suite: {passed} passed, {failed} failed")
EOF
[ "$FAILED" = 0 ] || echo "a phase FAILED: see above"
exit $FAILED
