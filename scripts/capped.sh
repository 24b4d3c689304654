# For device runs: `source scripts/capped.sh; capped NAME SECONDS cmd args...` runs the command with its output
# in $OUT/NAME.log and a hard cap of SECONDS. A plain `timeout` around `bash .gpu/run.sh node ...` kills only
# the shell and leaves Node running (and a pipe after it waiting), so this polls and kills Node processes too.
# Prints the log's test summary / error lines afterwards.
capped() {
  local name=$1 t=$2
  shift 2
  ("$@" > "$OUT/$name.log" 2>&1) &
  local p=$! i=0
  while kill -0 "$p" 2>/dev/null && [ "$i" -lt "$t" ]; do
    sleep 1
    i=$((i + 1))
  done
  if kill -0 "$p" 2>/dev/null; then
    echo "$name: TIMEOUT after $t s"
    pkill -9 -f 'node ' || true
  fi
  wait "$p" 2>/dev/null
  echo "== $name ($i s)"
  grep -E "^not ok|^# (tests|pass|fail)|tok/s|Error|error" "$OUT/$name.log" | head -30
}
