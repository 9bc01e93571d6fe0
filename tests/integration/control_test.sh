#!/usr/bin/env bash
# The control socket, `moat stats` and the Prometheus endpoint (SPEC R-CTL-1..3, R-CLI-9,
# R-OBS-6/7, R-CLI-5 SIGHUP) on live gateways, with the default seccomp filter and the drop
# to nobody (moat runs as root here):
#   serve: the abstract socket @moat/0/NAME; version, stats, policy.get, publish/unpublish
#     (the listener really appears and goes), policy.set, policy.reload and SIGHUP after the
#     config file changed (audit config_change by control and sighup), errors (unknown
#     method, bad JSON, an oversize request closed with `limit`), a foreign uid refused
#     (setpriv --reuid 65534) and counted, `moat stats` (table, --json parsed by python,
#     --prometheus and GET /metrics through promtool, 404/405), shutdown -> exit 0 and the
#     socket is gone;
#   run: the socket of a `moat run`, `moat stats --flows` listing the command's open TCP flow;
#   two gateways: `moat stats` lists them and asks for --name; --no-control: no socket;
#   --control PATH: mode 0600, a stale socket file replaced, removed at exit.
# moat-it-timeout: 240
source "$(dirname "$0")/lib.sh" "$@"
chown 65534 "$T_DIR"  # moat drops to nobody and removes its socket files as nobody
TOOLS="$(cd "$(dirname "$0")" && pwd)/tools"
NP="$TOOLS/netpeer.py"
CTL="$TOOLS/ctlclient.py"
command -v promtool > /dev/null || { echo "SKIP: promtool missing (scripts/deps.sh installs prometheus)"; exit 77; }

ip link add pub0 type veth peer name pub1
ip link set pub1 up
ip link set pub0 up
ip addr add 44.1.1.1/32 dev pub0
start_bg dns "$NP" dns --port 15353 --name moat-test.example.com --addr 44.1.1.1 --ready-file "$T_DIR/dns.ready" --max-seconds 200
start_bg http "$NP" serve-hold --bind 44.1.1.1 --port 2222 --max-seconds 200
check "dns server ready" wait_for 5 test -s "$T_DIR/dns.ready"
GW=(--dns-upstream 127.0.0.1:15353 --log-level info)

listening() { grep -q " @moat/0/$1\$" /proc/net/unix; }
has_line() { grep -qE -- "$2" "$1"; }
ctl() { timeout 15 "$CTL" "$@"; }
# counter NAME: a counter of gateway "it-serve" through moat stats --json
counter() { timeout 10 "$MOAT" stats --name it-serve --json | python3 -c "import json,sys; print(json.load(sys.stdin)['counters']['$1'])"; }

# --- 1. serve with the default abstract socket, a config file, metrics and an audit file ------
cat > "$T_DIR/cfg.toml" <<'TOML'
[policy]
rules = ["allow@44.1.1.1:tcp:2222"]
TOML
chmod 644 "$T_DIR/cfg.toml"
start_bg serve "$MOAT" serve --qemu "@moat-it-ctl-$$" "${GW[@]}" --name it-serve --config "$T_DIR/cfg.toml" \
  --metrics 127.0.0.1:19464 --audit "$T_DIR/audit.jsonl" --ready-file "$T_DIR/serve.ready"
SERVE=$BG_PID
check "serve: ready" wait_for 10 test -s "$T_DIR/serve.ready"
check "serve: @moat/0/it-serve listening (/proc/net/unix)" listening it-serve
ADDR="@moat/0/it-serve"
set +e
timeout 10 "$MOAT" serve --qemu "@moat-it-ctl-dup-$$" "${GW[@]}" --name it-serve > /dev/null 2> "$T_DIR/dup.err"; rc=$?
set -e
check "a second gateway with the same --name: exit 2 naming the socket ($(head -c 160 "$T_DIR/dup.err"))" \
  bash -c "test $rc -eq 2 && grep -q 'control socket @moat/0/it-serve: address in use.*another --name' '$T_DIR/dup.err'"

ctl "$ADDR" version > "$T_DIR/version.out" || true
check "version answers" has_line "$T_DIR/version.out" '"result":\{"moat":'
echo '{"id":"s","method":"version"}' | timeout 10 socat -t 3 - ABSTRACT-CONNECT:moat/0/it-serve > "$T_DIR/socat.out" 2>&1 || true
check "socat as a client" has_line "$T_DIR/socat.out" '^\{"id":"s","result":\{"moat":'
ctl "$ADDR" stats > "$T_DIR/stats.out" || true
check "stats has the counters" has_line "$T_DIR/stats.out" '"counters":\{"link.from_guest.frames":'
ctl "$ADDR" policy.get > "$T_DIR/pget.out" || true
check "policy.get lists the config rule" has_line "$T_DIR/pget.out" '"origin":"config","rule":"allow@44.1.1.1:tcp:2222"'

# publish / unpublish: the listener really appears and goes
ctl "$ADDR" publish '{"spec":"127.0.0.1:18081:80"}' > "$T_DIR/pub.out" || true
check "publish answers the listener" has_line "$T_DIR/pub.out" '"listeners":\["tcp 127.0.0.1:18081'
check "publish: 127.0.0.1:18081 listens" bash -c "ss -Hltn 'sport = :18081' | grep -q 18081"
ctl "$ADDR" publish '{"spec":"127.0.0.1:18081:80"}' > "$T_DIR/pub2.out" || true
check "publish twice -> conflict" has_line "$T_DIR/pub2.out" '"code":"conflict"'
ctl "$ADDR" unpublish '{"spec":"127.0.0.1:18081:80"}' > "$T_DIR/unpub.out" || true
check "unpublish closes it" has_line "$T_DIR/unpub.out" '"closed":1'
check "unpublish: nothing listens on 18081" bash -c "! ss -Hltn 'sport = :18081' | grep -q 18081"

# policy.set, then policy.reload and SIGHUP after the file changed
ctl "$ADDR" policy.set '{"policy":["deny@44.1.1.1","allow@*.example.com:tcp:443"]}' > "$T_DIR/pset.out" || true
check "policy.set accepted" has_line "$T_DIR/pset.out" '"result":\{"rules":[0-9]+'
ctl "$ADDR" policy.get > "$T_DIR/pget2.out" || true
check "policy.get shows the new rules" has_line "$T_DIR/pget2.out" '"rule":"deny@44.1.1.1"'
ctl "$ADDR" policy.set '{"policy":["allow@nonsense:::"]}' > "$T_DIR/pbad.out" || true
check "a bad policy.set -> invalid_config" has_line "$T_DIR/pbad.out" '"code":"invalid_config"'
cat > "$T_DIR/cfg.toml" <<'TOML'
[policy]
rules = ["allow@44.1.1.1:tcp:2222", "deny@44.1.1.0/24"]
TOML
ctl "$ADDR" policy.reload > "$T_DIR/reload.out" || true
check "policy.reload re-reads the file (as nobody, under seccomp)" has_line "$T_DIR/reload.out" '"file":"'"$T_DIR"'/cfg.toml"'
ctl "$ADDR" policy.get > "$T_DIR/pget3.out" || true
check "policy.get shows the reloaded rule" has_line "$T_DIR/pget3.out" '"origin":"config","rule":"deny@44.1.1.0/24"'
cat > "$T_DIR/cfg.toml" <<'TOML'
[policy]
rules = ["deny@44.1.1.1:tcp:2222"]
TOML
kill -HUP "$SERVE"
check "SIGHUP reloads the policy" wait_for 5 bash -c "'$CTL' '$ADDR' policy.get | grep -q '\"rule\":\"deny@44.1.1.1:tcp:2222\"'"
check "audit: config_change by control (publish)" wait_for 5 has_line "$T_DIR/audit.jsonl" '"ev":"config_change".*"what":"publish 127.0.0.1:18081:80","by":"control"'
check "audit: config_change by control (policy.set)" has_line "$T_DIR/audit.jsonl" '"what":"policy.set","by":"control"'
check "audit: config_change by sighup (policy.reload)" has_line "$T_DIR/audit.jsonl" '"what":"policy.reload [^"]*","by":"sighup"'

# protocol errors
ctl "$ADDR" no.such.method > "$T_DIR/unk.out" || true
check "unknown method -> unknown_method" has_line "$T_DIR/unk.out" '"code":"unknown_method"'
printf '{"id":1,"method":\n{"id":2,"method":"version"}\n' > "$T_DIR/bad.req"
ctl "$ADDR" --raw "$T_DIR/bad.req" --timeout 3 > "$T_DIR/bad.out" || true
check "bad JSON -> invalid_params, the next request still answered" \
  bash -c "grep -q '\"code\":\"invalid_params\"' '$T_DIR/bad.out' && grep -q '\"id\":2,\"result\"' '$T_DIR/bad.out'"
head -c $((1024 * 1024 + 100)) /dev/zero | tr '\0' 'a' > "$T_DIR/big.req"
ctl "$ADDR" --raw "$T_DIR/big.req" --timeout 5 > "$T_DIR/big.out" || true
check "a request over 1 MiB -> limit, then closed" has_line "$T_DIR/big.out" '"code":"limit"'
check "control.oversize counted" test "$(counter control.oversize)" -ge 1

# a foreign uid is refused (R-CTL-1) and counted
set +e
timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 "$CTL" "$ADDR" version > "$T_DIR/foreign.out" 2>&1
rc=$?
set -e
check "uid 65534 gets no answer (status $rc, $(head -c 100 "$T_DIR/foreign.out"))" test $rc -eq 2
check "control.refused counted" test "$(counter control.refused)" -ge 1

# moat stats: table, JSON, Prometheus
timeout 10 "$MOAT" stats > "$T_DIR/table.out" 2>&1 || true
check "moat stats finds the one gateway (table)" has_line "$T_DIR/table.out" '^gateway +it-serve'
check "moat stats table has memory and drops" bash -c "grep -q '^memory ' '$T_DIR/table.out' && grep -q '^drops ' '$T_DIR/table.out'"
timeout 10 "$MOAT" stats --pid "$SERVE" --json > "$T_DIR/stats.json" 2>&1 || true
check "moat stats --pid --json parses (python)" python3 -c "
import json; j = json.load(open('$T_DIR/stats.json'))
assert j['gateway'] == 'it-serve' and j['counters']['control.requests'] > 0 and 'drop.total' in j, j"
timeout 10 "$MOAT" stats --control "$ADDR" --prometheus > "$T_DIR/prom.txt" 2> "$T_DIR/prom.err" || true
check "moat stats --prometheus passes promtool check metrics" bash -c "promtool check metrics < '$T_DIR/prom.txt' > '$T_DIR/promtool.log' 2>&1"
check "prometheus: counters as moat_*_total with the gateway label" has_line "$T_DIR/prom.txt" '^moat_tcp_opened_total\{gateway="it-serve"\} [0-9]+$'
check "prometheus: memory gauges" has_line "$T_DIR/prom.txt" '^# TYPE moat_memory_budget_bytes gauge$'
curl -sS --max-time 5 -o "$T_DIR/scrape.txt" -w '%{http_code} %{content_type}\n' http://127.0.0.1:19464/metrics > "$T_DIR/scrape.code" || true
check "GET /metrics -> 200 text/plain version=0.0.4" has_line "$T_DIR/scrape.code" '^200 text/plain; version=0.0.4'
check "GET /metrics passes promtool check metrics" bash -c "promtool check metrics < '$T_DIR/scrape.txt' > '$T_DIR/promtool2.log' 2>&1"
check "GET /other -> 404" test "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:19464/other)" = 404
check "POST /metrics -> 405" test "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:19464/metrics)" = 405
check "garbage -> 400" bash -c "printf 'HELLO\r\n\r\n' | timeout 5 socat -t 3 - TCP:127.0.0.1:19464 | head -n 1 | grep -q '^HTTP/1.1 400'"

# events.subscribe: a subscriber sees the config_change of a publish made meanwhile
printf '{"id":1,"method":"events.subscribe","params":{"events":["config_change"]}}\n' > "$T_DIR/sub.req"
timeout 15 "$CTL" "$ADDR" --raw "$T_DIR/sub.req" --timeout 4 > "$T_DIR/sub.out" &
SUB=$!
sleep 1
ctl "$ADDR" publish '{"spec":"127.0.0.1:18082:80"}' > /dev/null || true
wait "$SUB" || true
check "events.subscribe: answered, then the config_change streamed" \
  bash -c "grep -q '\"subscribed\":true' '$T_DIR/sub.out' && grep -q '\"ev\":\"config_change\".*publish 127.0.0.1:18082:80' '$T_DIR/sub.out'"

# shutdown: exit 0, socket gone
ctl "$ADDR" shutdown > "$T_DIR/shutdown.out" || true
check "shutdown answers" has_line "$T_DIR/shutdown.out" '"stopped":true'
rc=0; timeout 10 tail --pid="$SERVE" -f /dev/null || rc=$?
wait "$SERVE"; src=$?
check "serve exited 0 after shutdown (status $src)" test $src -eq 0
check "the control socket is gone after exit" bash -c "! grep -q ' @moat/0/it-serve\$' /proc/net/unix"
check "no seccomp kill in the serve log" bash -c "! grep -qi 'sigsys\|bad system call' '$T_DIR/serve.log'"

# --- 2. moat run: its control socket and its flows ---------------------------------------
start_bg run timeout 60 "$MOAT" run "${GW[@]}" --name it-run --rule allow@44.1.1.1:tcp:2222 --ready-file "$T_DIR/run.ready" -- \
  python3 -c "import socket,time; s=socket.create_connection(('44.1.1.1',2222)); s.sendall(b'x'*1000); open('$T_DIR/run.connected','w').write('1'); time.sleep(8)"
RUN=$BG_PID
check "run: connected" wait_for 15 test -e "$T_DIR/run.connected"
check "run: @moat/0/it-run listening" listening it-run
timeout 10 "$MOAT" stats --name it-run --flows > "$T_DIR/runflows.out" 2>&1 || true
check "moat stats --flows lists the command's flow" has_line "$T_DIR/runflows.out" '44\.1\.1\.1:2222 .* fast .*'
timeout 10 "$MOAT" stats --name it-run --flows --json > "$T_DIR/runflows.json" 2>&1 || true
check "flows JSON: tuple, path, bytes, age" python3 -c "
import json; f = json.load(open('$T_DIR/runflows.json'))['flows']
m = [x for x in f if x['remote'] == '44.1.1.1:2222']
assert m and m[0]['proto'] == 'tcp' and m[0]['bytes_from_guest'] >= 1000 and m[0]['age_s'] >= 0 and m[0]['path'] == 'fast', f"

# --watch redraws (home + clear, then the table again) until interrupted
set +e; timeout -s INT 2 "$MOAT" stats --name it-run --watch 500ms > "$T_DIR/watch.out" 2>&1; set -e
check "moat stats --watch redraws" test "$(grep -c $'\x1b\[H\x1b\[2J' "$T_DIR/watch.out")" -ge 2

# --- 3. two gateways; --no-control; --control PATH ----------------------------------------
start_bg second "$MOAT" serve --qemu "@moat-it-ctl2-$$" "${GW[@]}" --name it-two --ready-file "$T_DIR/two.ready"
TWO=$BG_PID
check "second gateway ready" wait_for 10 test -s "$T_DIR/two.ready"
set +e; timeout 10 "$MOAT" stats > "$T_DIR/several.out" 2>&1; rc=$?; set -e
check "several gateways: moat stats lists them, exit 1 (status $rc)" \
  bash -c "test $rc -eq 1 && grep -q 'it-run' '$T_DIR/several.out' && grep -q 'it-two' '$T_DIR/several.out'"
kill "$TWO"; wait "$TWO" || true
wait "$RUN" || true

start_bg noctl "$MOAT" serve --qemu "@moat-it-ctl3-$$" "${GW[@]}" --name it-none --no-control --ready-file "$T_DIR/none.ready"
NONE=$BG_PID
check "--no-control: ready" wait_for 10 test -s "$T_DIR/none.ready"
check "--no-control: no socket" bash -c "! grep -q ' @moat/0/it-none\$' /proc/net/unix"
kill "$NONE"; wait "$NONE" || true

SOCK="$T_DIR/ctl.sock"
python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.bind('$SOCK')"  # a stale socket file
start_bg pathctl "$MOAT" serve --qemu "@moat-it-ctl4-$$" "${GW[@]}" --name it-path --control "$SOCK" --ready-file "$T_DIR/path.ready"
PATHGW=$BG_PID
check "--control PATH: ready (the stale socket replaced)" wait_for 10 test -s "$T_DIR/path.ready"
check "--control PATH: mode 0600" test "$(stat -c %a "$SOCK")" = 600
timeout 10 "$MOAT" stats --control "$SOCK" --json > "$T_DIR/path.json" 2>&1 || true
check "--control PATH: moat stats --control" python3 -c "import json; assert json.load(open('$T_DIR/path.json'))['gateway'] == 'it-path'"
kill "$PATHGW"; wait "$PATHGW" || true
check "--control PATH: removed at exit" test ! -e "$SOCK"

# --- 4. moat attach: its control socket; shutdown ends it with status 0 -------------------
new_netns "moat-it-ctl-$$"
start_bg attach "$MOAT" attach --netns "/run/netns/moat-it-ctl-$$" "${GW[@]}" --name it-attach --ready-file "$T_DIR/attach.ready"
ATT=$BG_PID
check "attach: ready" wait_for 10 test -s "$T_DIR/attach.ready"
check "attach: @moat/0/it-attach listening" listening it-attach
ctl "@moat/0/it-attach" shutdown > "$T_DIR/att-shutdown.out" || true
set +e; timeout 10 tail --pid="$ATT" -f /dev/null; wait "$ATT"; arc=$?; set -e
check "attach: exit 0 after shutdown (status $arc)" test $arc -eq 0
check "attach: socket gone" bash -c "! grep -q ' @moat/0/it-attach\$' /proc/net/unix"

finish
