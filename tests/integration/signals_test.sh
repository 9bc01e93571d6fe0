#!/usr/bin/env bash
# moat run forwards SIGTERM to the child and exits with its status; moat itself ignores SIGINT
# while the child runs (R-CLI-2); cleanup leaves nothing behind.
source "$(dirname "$0")/lib.sh" "$@"
start_bg run "$MOAT" run --profile all --ready-file "$T_DIR/ready" -- sleep 30
pid=$BG_PID
check "ready" wait_for 10 test -s "$T_DIR/ready"
kill -INT "$pid"
sleep 0.3
check "SIGINT to moat alone does not stop it" kill -0 "$pid"
kill -TERM "$pid"
check "SIGTERM forwarded: exits within 2 s" wait_for 2 bash -c "! kill -0 $pid 2>/dev/null"
set +e; wait "$pid"; rc=$?; set -e
check "status is 128+SIGTERM (got $rc)" test $rc -eq 143
check "no stray sleep left" bash -c "! pgrep -f 'sleep 30' -P $pid >/dev/null"
finish
