#!/usr/bin/env bash
# bench/stress.sh MOAT [SCENARIOS]  (make stress; not part of make test)
# Floods proven harmless (issue 14 deliverable 5, SPEC R-HARD, R-LIM): for each scenario a
# fresh `moat run --profile all` (seccomp on, default limits and memory budget) whose command
# is a hostile guest: while a download from a host server runs through moat, the guest sends
#   syn      100k TCP SYNs to random ports of the gateway (raw frames on the TAP)
#   frag4    100k IPv4 first fragments that never complete
#   frag6    100k IPv6 first fragments that never complete
#   udp      30k UDP flows to distinct ports
#   garbage  100k random frames
#   arp/ndp/dhcp  50k ARP requests / neighbour solicitations / DHCPDISCOVERs from random sources
#   dns      5k DNS queries to an upstream that never answers
#   pubconn  10k host connections to a port published into the guest
# and prints, per scenario: moat's peak RSS (VmHWM), its CPU seconds, the concurrent
# download's bytes and longest stall, and the counters that rose. Goal (issue 14): peak RSS
# under 64 MiB each, the download never stalls for more than a second. Everything runs in
# a network namespace this script creates (tests/integration/lib.sh), on loopback inside it.
# Exit status: 1 if a goal was missed or a scenario did not run, else 0.
source "$(dirname "$0")/../tests/integration/lib.sh" "$@"
TOOLS="$(cd "$(dirname "$0")/../tests/integration/tools" && pwd)"
ST="$TOOLS/stress.py"
SCENARIOS="${2:-syn frag4 frag6 udp garbage arp ndp dhcp dns pubconn}"
G="$T_DIR/guest"; mkdir -p "$G"; chmod 0777 "$G" "$T_DIR"

start_bg stream "$ST" serve-stream --port 18710 --ready-file "$T_DIR/stream.ready" --max-seconds 1200
start_bg dns python3 "$TOOLS/dnszone.py" --port 5399 --silent --log "$T_DIR/dns.queries" \
  --ready-file "$T_DIR/dns.ready" --max-seconds 1200
wait_for 10 test -s "$T_DIR/stream.ready" && wait_for 10 test -s "$T_DIR/dns.ready" ||
  { echo "stress: host servers did not start"; exit 1; }

count_of() {
  case "$1" in
    syn|frag4|frag6|garbage) echo 100000 ;;
    udp) echo 30000 ;;
    arp|ndp|dhcp) echo 50000 ;;
    dns) echo 5000 ;;
    pubconn) echo 10000 ;;
  esac
}

cat > "$G/guest.sh" <<GUEST
#!/bin/sh
# \$1 = scenario, \$2 = count
ST='$ST'; G='$G'
ulimit -n 8192
i=0; while [ ! -e "\$G/go" ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done
python3 "\$ST" download --host 100.96.0.1 --port 18710 --stop-file "\$G/stop" --out "\$G/download.out" --max-seconds 240 &
dl=\$!
sleep 1
if [ "\$1" = pubconn ]; then
  python3 "\$ST" listen --port 18720 --ready-file "\$G/listen.ready" --max-seconds 240 &
  ln=\$!
  i=0; while [ ! -e "\$G/storm.done" ] && [ \$i -lt 1800 ]; do sleep 0.1; i=\$((i+1)); done
  kill \$ln
else
  python3 "\$ST" flood "\$1" --count "\$2" --max-seconds 120 > "\$G/flood.out" 2>&1; ip -s link show eth0 > "\$G/eth0.txt"
fi
sleep 2
touch "\$G/stop"
wait \$dl
touch "\$G/done"
i=0; while [ ! -e "\$G/exit" ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i+1)); done
GUEST
chmod 0755 "$G/guest.sh"

# name=value counters from the last SIGUSR1 dump in LOG.
dump() { grep -o '[a-z0-9_.]*=[0-9]*' "$1" | awk -F= '{v[$1]=$2} END {for (k in v) print k, v[k]}' | sort; }

printf '%-8s %9s %8s %7s %10s %9s  %s\n' scenario "peak RSS" "CPU s" sent "download" "max stall" "counters that rose"
bad=0
for sc in $SCENARIOS; do
  n="$(count_of "$sc")"
  [[ -n "$n" ]] || { echo "stress: unknown scenario $sc"; bad=1; continue; }
  rm -f "$G"/go "$G"/stop "$G"/done "$G"/exit "$G"/storm.done "$G"/listen.ready "$G"/*.out
  log="$T_DIR/moat-$sc.log"
  timeout 400 "$MOAT" run --profile all --dns-upstream 127.0.0.1:5399 -p 127.0.0.1:18720:18720 \
    -- "$G/guest.sh" "$sc" "$n" > "$log" 2>&1 &
  run_pid=$!
  T_PIDS+=("$run_pid")
  moat_pid=""
  for _ in $(seq 1 100); do moat_pid="$(pgrep -P "$run_pid" -x moat | head -n 1)"; [[ -n "$moat_pid" ]] && break; sleep 0.1; done
  [[ -n "$moat_pid" ]] || { echo "stress: $sc: moat did not start"; tail -5 "$log"; bad=1; continue; }
  sleep 1
  kill -USR1 "$moat_pid"; sleep 0.3
  cp "$log" "$T_DIR/before.log"
  touch "$G/go"
  if [[ $sc == pubconn ]]; then
    wait_for 20 test -e "$G/listen.ready" || true
    python3 "$ST" connect-storm --host 127.0.0.1 --port 18720 --count "$n" --max-seconds 180 > "$G/flood.out" 2>&1 || true
    touch "$G/storm.done"
  fi
  wait_for 300 test -e "$G/done" || echo "stress: $sc: the guest did not finish"
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$moat_pid/status" 2>/dev/null || echo 0)
  cpu=$(awk '{printf "%.1f", ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$moat_pid/stat" 2>/dev/null || echo "?")
  kill -USR1 "$moat_pid"; sleep 0.3
  rose=$(join <(dump "$T_DIR/before.log") <(dump "$log") |
    awk '$3 > $2 && $1 !~ /^(link\.to_guest|memory|tcp\.active|udp\.active|flows)/ {printf "%s+%d ", $1, $3 - $2}')
  touch "$G/exit"
  wait "$run_pid" 2>/dev/null || true
  read -r _ dbytes _ stall < "$G/download.out" 2>/dev/null || { dbytes=0; stall=99999; }
  sent="$(awk '{print $2}' "$G/flood.out" 2>/dev/null | head -n 1)"
  [[ $sc == pubconn ]] && sent="$(awk '{print $2}' "$G/flood.out" 2>/dev/null)"
  printf '%-8s %6d MiB %8s %7s %7d MiB %6d ms  %s\n' "$sc" $((hwm / 1024)) "$cpu" "${sent:-?}" \
    $((dbytes / 1048576)) "$stall" "${rose:-(none)}"
  if (( hwm >= 64 * 1024 )); then echo "  MISSED: peak RSS $((hwm / 1024)) MiB >= 64 MiB"; bad=1; fi
  if (( stall > 1000 || dbytes == 0 )); then echo "  MISSED: the download stalled ${stall} ms (or moved nothing)"; bad=1; fi
done
exit $bad
