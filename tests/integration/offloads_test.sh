#!/usr/bin/env bash
# virtio-net headers and offloads on the TAP (R-TR-6, R-ADDR-6): with --offloads auto (the
# default) the TAP has IFF_VNET_HDR and the guest kernel hands moat partial checksums and TSO
# super-frames; with none it has no header. At MTU 1500 (so TSO frames really exceed the MSS)
# 8 MiB each way over IPv4 and IPv6 must arrive byte-identical in both modes. With uso, one
# UDP_SEGMENT write from the guest becomes gso_size datagrams on the host. Bad lists: §5.2.
# moat-it-timeout: 300
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
BYTES=8388608

start_bg sink  "$NP" serve-sink --port 18300 --ready-file "$T_DIR/sink.ready" --max-seconds 280
start_bg src   "$NP" serve-send --port 18301 --bytes $BYTES --seed 51 --ready-file "$T_DIR/src.ready" --max-seconds 280
start_bg sink6 "$NP" serve-sink --port 18300 --bind ::1 --ready-file "$T_DIR/sink6.ready" --max-seconds 280
start_bg src6  "$NP" serve-send --port 18301 --bind ::1 --bytes $BYTES --seed 51 --ready-file "$T_DIR/src6.ready" --max-seconds 280
start_bg dns   "$NP" dns --port 15353 --name moat-test.example.com --addr 93.184.216.34 --ready-file "$T_DIR/dns.ready" --max-seconds 280
check "host servers ready" wait_for 10 bash -c "test -s '$T_DIR/sink.ready' -a -s '$T_DIR/src.ready' -a -s '$T_DIR/sink6.ready' -a -s '$T_DIR/src6.ready' -a -s '$T_DIR/dns.ready'"
want_up="$("$NP" expect-sha --bytes $BYTES --seed 50)"
want_down="$("$NP" expect-sha --bytes $BYTES --seed 51)"

for mode in auto none; do
  G="$T_DIR/$mode"; mkdir -p "$G"
  set +e
  timeout 120 "$MOAT" run --profile all --mtu 1500 --offloads "$mode" --dns-upstream 127.0.0.1:15353 -- sh -c "
    ip -d link show eth0 > '$G/link.txt'
    timeout 50 '$NP' send --host 100.96.0.1 --port 18300 --bytes $BYTES --seed 50 --max-seconds 45 > '$G/up4' 2>'$G/up4.log'
    timeout 50 '$NP' fetch --host 100.96.0.1 --port 18301 --max-seconds 45 > '$G/down4' 2>'$G/down4.log'
    timeout 50 '$NP' send --host fd42:6d73:62::1 --port 18300 --bytes $BYTES --seed 50 --max-seconds 45 > '$G/up6' 2>'$G/up6.log'
    timeout 50 '$NP' fetch --host fd42:6d73:62::1 --port 18301 --max-seconds 45 > '$G/down6' 2>'$G/down6.log'
    ping -c 1 -W 2 -s 1200 100.96.0.1 > '$G/ping.txt' 2>&1; echo \"ping \$?\" >> '$G/ping.txt'
  " > "$G/run.out" 2> "$G/moat.log"
  rc=$?
  set -e
  check "$mode: moat run exit 0 (got $rc)"         test $rc -eq 0
  if [[ $mode == auto ]]; then
    check "$mode: TAP has a vnet header"          grep -q "vnet_hdr on" "$G/link.txt"
  else
    check "$mode: TAP has no vnet header"         grep -q "vnet_hdr off" "$G/link.txt"
  fi
  check "$mode: 8 MiB guest->host IPv4"           test "$(cat "$G/up4")" = "$want_up"
  check "$mode: 8 MiB host->guest IPv4"           test "$(cat "$G/down4")" = "$want_down"
  check "$mode: 8 MiB guest->host IPv6"           test "$(cat "$G/up6")" = "$want_up"
  check "$mode: 8 MiB host->guest IPv6"           test "$(cat "$G/down6")" = "$want_down"
  check "$mode: ping to the gateway"              grep -qx "ping 0" "$G/ping.txt"
  check "$mode: no vnet_hdr drops"                bash -c "! grep -q 'drop.vnet_hdr' '$G/moat.log'"
done

# USO: one 8000-byte UDP_SEGMENT (gso_size 1000) write in the guest -> 8 datagrams on the host.
cat > "$T_DIR/udp_count.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 18302)); s.settimeout(1)
open(sys.argv[1] + ".ready", "w").write("1")
sizes = []; end = time.time() + 60
while time.time() < end and len(sizes) < 8:
    try: sizes.append(len(s.recv(65535)))
    except socket.timeout: pass
open(sys.argv[1], "w").write(" ".join(map(str, sizes)) + "\n")
PY
cat > "$T_DIR/uso_send.py" <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT
s.sendto(bytes(range(250)) * 32, ("100.96.0.1", 18302))
PY
start_bg udpcount python3 "$T_DIR/udp_count.py" "$T_DIR/uso.sizes"
check "udp counter ready" wait_for 10 test -s "$T_DIR/uso.sizes.ready"
set +e
timeout 60 "$MOAT" run --profile all --mtu 9000 --offloads csum,tso4,tso6,uso --dns-upstream 127.0.0.1:15353 \
  -- python3 "$T_DIR/uso_send.py" > "$T_DIR/uso.out" 2> "$T_DIR/uso.log"
rc=$?
set -e
check "uso: moat run exit 0 (got $rc)"              test $rc -eq 0
check "uso: 8 datagrams of 1000 bytes on the host" wait_for 10 grep -qx "1000 1000 1000 1000 1000 1000 1000 1000" "$T_DIR/uso.sizes"

# §5.2 usage errors name the flag.
set +e
msg=$("$MOAT" run --offloads tso4 -- true 2>&1); rc1=$?
msg2=$("$MOAT" run --offloads csum,bogus -- true 2>&1); rc2=$?
set -e
check "--offloads tso4: exit 125 (got $rc1)"        test $rc1 -eq 125
check "--offloads tso4: needs csum"                 grep -q '^moat: error: --offloads: "tso4": tso4, tso6 and uso need csum' <<< "$msg"
check "--offloads csum,bogus: names the item"       grep -q '^moat: error: --offloads: "bogus" is not an offload' <<< "$msg2"
finish
