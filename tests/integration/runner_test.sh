#!/usr/bin/env bash
# The test runners count what they ran: tests/check.sh (run.sh's check)
# counts a check that exits 77 as skipped, not passed, and one whose last
# line is "0 passed, 0 failed" (it made no check) as failed; the unit
# harness (tests/unit/main.c) fails a test that made no check, counts
# TEST_SKIP apart and keeps every test however many there are (a fixed
# table of 512 dropped the rest). usage: runner_test.sh BUILD_DIR TMPDIR
set -u
build=$1 tmp=$2/runner
rm -rf "$tmp"; mkdir -p "$tmp"
fails=0
log="$tmp/check.log"
. tests/check.sh
{
  check "passes" sh -c 'echo "3 passed, 0 failed"'
  check "cannot run" sh -c 'echo "SKIP  no cgroup here"; exit 77'
  check "made no check" sh -c 'echo "0 passed, 0 failed"'
  check "fails" sh -c 'exit 1'
} >"$tmp/out.txt"
if [ "$passed $failed $skipped" = "1 2 1" ] && grep -q "^skip  cannot run .*SKIP  no cgroup here" "$tmp/out.txt" &&
   grep -q "^FAIL  made no check .*(it made no check)" "$tmp/out.txt"; then
  echo "ok   check: 1 passed, 2 failed (one made no check), 1 skipped (exit 77)"
else
  echo "FAIL check counted $passed passed, $failed failed, $skipped skipped:"; cat "$tmp/out.txt"; fails=$((fails + 1))
fi
make -s "$build/harness_selftest" >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; fails=$((fails + 1)); }
out=$("$build/harness_selftest" 2>&1); rc=$?
if [ $rc -eq 1 ] && [ "$(tail -1 <<<"$out")" = "600 passed, 1 failed, 1 skipped" ] &&
   grep -q "FAIL made_no_check: it made no check" <<<"$out" && grep -q "SKIP cannot_run_here" <<<"$out"; then
  echo "ok   unit harness: 602 tests kept, the one without a check failed, the skip counted apart"
else
  echo "FAIL unit harness: exit $rc: $(tail -3 <<<"$out")"; fails=$((fails + 1))
fi
echo "$((2 - fails)) passed, $fails failed"
[ $fails -eq 0 ]
