# The check runner shared by tests/run.sh and its own test
# (tests/integration/runner_test.sh); sourced, with $log set to a file.
passed=0
failed=0
skipped=0

# A check passes when its command exits 0, and it made checks: a last line of
# "0 passed, 0 failed" (no check ran) is a failure. Exit 77 (automake's
# convention) is a check that cannot run here: counted as skipped, not passed.
check() { # name cmd...
  local name=$1; shift
  local t0=$SECONDS rc=0
  "$@" >"$log" 2>&1 || rc=$?
  local last
  last=$(tail -1 "$log" | cut -c1-110)
  if [ $rc -eq 77 ]; then
    skipped=$((skipped + 1))
    printf 'skip  %-40s %4ds  %s\n' "$name" $((SECONDS - t0)) "$(grep -m1 '^SKIP' "$log" | cut -c1-110)"
  elif [ $rc -eq 0 ] && ! grep -q '^0 passed, 0 failed' <<<"$last"; then
    passed=$((passed + 1))
    printf 'ok    %-40s %4ds  %s\n' "$name" $((SECONDS - t0)) "$last"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-40s %4ds%s\n' "$name" $((SECONDS - t0)) "$([ $rc -eq 0 ] && echo '  (it made no check)')"
    tail -40 "$log" | sed 's/^/      /'
  fi
}
