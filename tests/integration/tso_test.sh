#!/usr/bin/env bash
# To-guest offloads (R-TR-6, R-TCP-7): with --offloads auto moat hands the namespace's kernel
# TCP super-frames (gso_size = the guest's MSS) with partial checksums; with none it sends
# plain MSS-sized segments with complete checksums. 64 MiB host->guest over IPv4 and IPv6,
# at MTU 1500 and 65520, must arrive byte-identical either way. Counters (the exit "stats:"
# line): at MTU 1500 with auto, link.to_guest.gso_frames > 0 and tcp.tso_segments larger;
# with none both 0. At MTU 65520 one segment already fills a 64 KiB IP packet, so there are
# no super-frames, only partial checksums. Also: --impair (which takes no offloads: TCP
# falls back to plain segments and retransmits them), a --pcap capture whose checksums all
# verify, and serve --fd on a TAP with and without IFF_VNET_HDR.
# moat-it-timeout: 420
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
BYTES=67108864   # 64 MiB
SMALL=16777216   # 16 MiB

start_bg src   "$NP" serve-send --port 18310 --bytes $BYTES --seed 61 --ready-file "$T_DIR/src.ready" --max-seconds 400
start_bg src6  "$NP" serve-send --port 18310 --bind ::1 --bytes $BYTES --seed 61 --ready-file "$T_DIR/src6.ready" --max-seconds 400
start_bg srcs  "$NP" serve-send --port 18311 --bytes $SMALL --seed 62 --ready-file "$T_DIR/srcs.ready" --max-seconds 400
start_bg dns   "$NP" dns --port 15353 --name moat-test.example.com --addr 93.184.216.34 --ready-file "$T_DIR/dns.ready" --max-seconds 400
check "host servers ready" wait_for 10 bash -c "test -s '$T_DIR/src.ready' -a -s '$T_DIR/src6.ready' -a -s '$T_DIR/srcs.ready' -a -s '$T_DIR/dns.ready'"
want="$("$NP" expect-sha --bytes $BYTES --seed 61)"
want_small="$("$NP" expect-sha --bytes $SMALL --seed 62)"

# counter FILE NAME: the value in the last "stats:" line of a moat log.
counter() { grep -o "stats: .*" "$1" | tail -n 1 | grep -oE "(^| )$2=[0-9]+" | cut -d= -f2; }

for mtu in 1500 65520; do
  for mode in auto none; do
    G="$T_DIR/m$mtu-$mode"; mkdir -p "$G"
    set +e
    timeout 150 "$MOAT" run --profile all --mtu $mtu --offloads $mode --log-level debug \
      --dns-upstream 127.0.0.1:15353 -- sh -c "
      timeout 60 '$NP' fetch --host 100.96.0.1 --port 18310 --max-seconds 55 > '$G/down4' 2>'$G/down4.log'
      timeout 60 '$NP' fetch --host fd42:6d73:62::1 --port 18310 --max-seconds 55 > '$G/down6' 2>'$G/down6.log'
    " > "$G/run.out" 2> "$G/moat.log"
    rc=$?
    set -e
    gso=$(counter "$G/moat.log" link.to_guest.gso_frames); segs=$(counter "$G/moat.log" tcp.tso_segments)
    partial=$(counter "$G/moat.log" link.to_guest.csum_partial)
    echo "mtu $mtu $mode: gso_frames=$gso tso_segments=$segs csum_partial=$partial"
    check "mtu $mtu $mode: moat run exit 0 (got $rc)"     test $rc -eq 0
    check "mtu $mtu $mode: 64 MiB host->guest IPv4"       test "$(cat "$G/down4")" = "$want"
    check "mtu $mtu $mode: 64 MiB host->guest IPv6"       test "$(cat "$G/down6")" = "$want"
    if [[ $mode == none ]]; then
      check "mtu $mtu none: no super-frames ($gso)"         test "${gso:-x}" = 0
      check "mtu $mtu none: no partial checksums ($partial)" test "${partial:-x}" = 0
    elif [[ $mtu == 1500 ]]; then
      check "mtu 1500 auto: super-frames sent ($gso)"       test "${gso:-0}" -gt 1000
      check "mtu 1500 auto: each stands for several segments ($segs)" test "${segs:-0}" -gt $((2 * gso))
      check "mtu 1500 auto: partial checksums ($partial)"   test "${partial:-0}" -ge "${gso:-1}"
    else
      check "mtu 65520 auto: one segment fills 64 KiB, no super-frames ($gso)" test "${gso:-x}" = 0
      check "mtu 65520 auto: partial checksums ($partial)"  test "${partial:-0}" -gt 1000
    fi
  done
done

# --impair: the impaired link takes no offloads, so TCP sends plain segments, loses some
# and retransmits them; the download still arrives intact.
G="$T_DIR/impair"; mkdir -p "$G"
set +e
timeout 150 "$MOAT" run --profile all --mtu 1500 --offloads auto --log-level debug \
  --impair loss=0.02,reorder=0.05,seed=11 --dns-upstream 127.0.0.1:15353 -- \
  timeout 120 "$NP" fetch --host 100.96.0.1 --port 18311 --max-seconds 115 > "$G/down4" 2> "$G/moat.log"
rc=$?
set -e
check "impair: moat run exit 0 (got $rc)"             test $rc -eq 0
check "impair: 16 MiB host->guest IPv4"               test "$(cat "$G/down4")" = "$want_small"
check "impair: plain segments ($(counter "$G/moat.log" link.to_guest.gso_frames))" \
  test "$(counter "$G/moat.log" link.to_guest.gso_frames)" = 0
check "impair: retransmissions happened"              test "$(counter "$G/moat.log" tcp.retransmits)" -gt 0

# --pcap with offloads: super-frames are recorded as such, with completed checksums.
G="$T_DIR/pcap"; mkdir -p "$G"
set +e
timeout 100 "$MOAT" run --profile all --mtu 1500 --offloads auto --pcap "$G/cap.pcap" \
  --dns-upstream 127.0.0.1:15353 -- \
  timeout 60 "$NP" fetch --host 100.96.0.1 --port 18311 --max-seconds 55 > "$G/down4" 2> "$G/moat.log"
rc=$?
set -e
check "pcap: moat run exit 0 (got $rc)"               test $rc -eq 0
check "pcap: 16 MiB host->guest IPv4"                 test "$(cat "$G/down4")" = "$want_small"
python3 - "$G/cap.pcap" > "$G/pcap.check" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
magic = struct.unpack("<I", data[:4])[0]
assert magic == 0xa1b2c3d4, hex(magic)
off, big, bad, tcp = 24, 0, 0, 0
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return s
while off + 16 <= len(data):
    _, _, incl, orig = struct.unpack("<IIII", data[off:off + 16]); off += 16
    f = data[off:off + incl]; off += incl
    # To-guest IPv4 TCP only (from the gateway MAC): the guest's own frames may carry
    # partial checksums, recorded as received.
    if incl != orig or len(f) < 54 or f[6:12] != bytes.fromhex("026d6f000001"): continue
    if f[12:14] != b"\x08\x00" or f[23] != 6: continue
    ihl = (f[14] & 15) * 4; tot = struct.unpack("!H", f[16:18])[0]
    seg = f[14 + ihl:14 + tot]
    ph = f[26:34] + struct.pack("!BBH", 0, 6, len(seg))
    tcp += 1
    if len(f) > 1514: big += 1
    if csum(ph + seg) != 0xffff: bad += 1
print(f"tcp {tcp} superframes {big} bad {bad}")
PY
cat "$G/pcap.check"
check "pcap: super-frames recorded"                   grep -qE "superframes [1-9]" "$G/pcap.check"
check "pcap: every TCP checksum verifies"             grep -qE "^tcp [1-9][0-9]* superframes [0-9]+ bad 0$" "$G/pcap.check"

# serve --fd on a TAP (R-TR-5/6): with IFF_VNET_HDR (12-byte header) moat sends super-frames
# as --offloads allows; without it, plain frames whatever --offloads says (logged once).
cat > "$T_DIR/fdtap.py" <<'PY'
import fcntl, os, signal, struct, subprocess, sys, time
moat, vnet, out, np_, want_port = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4], sys.argv[5]
fd = os.open("/dev/net/tun", os.O_RDWR)
flags = 0x0002 | 0x1000 | (0x4000 if vnet else 0)   # IFF_TAP | IFF_NO_PI [| IFF_VNET_HDR]
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", b"mt0", flags))        # TUNSETIFF
if vnet:
    fcntl.ioctl(fd, 0x400454D8, struct.pack("i", 12))                  # TUNSETVNETHDRSZ
log = open(out + ".log", "w")
p = subprocess.Popen([moat, "serve", "--fd", str(fd), "--profile", "all", "--mtu", "1500", "--offloads", "auto",
                      "--dns-upstream", "127.0.0.1:15353", "--log-level", "debug"],
                     pass_fds=[fd], stderr=log)
os.close(fd)
try:
    for c in (["ip", "link", "set", "mt0", "address", "02:6d:6f:00:00:02", "mtu", "1500", "up"],
              ["ip", "addr", "add", "100.96.0.2/30", "dev", "mt0"]):
        subprocess.run(c, check=True)
    with open(out, "w") as f:
        rc = subprocess.run(["timeout", "60", np_, "fetch", "--host", "100.96.0.1", "--port", want_port,
                             "--max-seconds", "55"], stdout=f).returncode
    p.send_signal(signal.SIGTERM)
    print(f"fetch {rc} moat {p.wait(timeout=10)}")
finally:
    if p.poll() is None:
        p.kill(); p.wait()
    subprocess.run(["ip", "link", "del", "mt0"], stderr=subprocess.DEVNULL)
PY
for v in 1 0; do
  G="$T_DIR/fd$v"; mkdir -p "$G"
  set +e
  timeout 100 python3 "$T_DIR/fdtap.py" "$MOAT" $v "$G/down4" "$NP" 18311 > "$G/fdtap.out" 2>&1
  set -e
  cat "$G/fdtap.out"
  check "serve --fd TAP vnet=$v: fetch and moat exit 0"  grep -qx "fetch 0 moat 0" "$G/fdtap.out"
  check "serve --fd TAP vnet=$v: 16 MiB intact"          test "$(cat "$G/down4")" = "$want_small"
  gso=$(counter "$G/down4.log" link.to_guest.gso_frames)
  if [[ $v == 1 ]]; then
    check "serve --fd TAP with vnet header: super-frames ($gso)" test "${gso:-0}" -gt 100
  else
    check "serve --fd TAP without vnet header: none ($gso)"      test "${gso:-x}" = 0
    check "serve --fd TAP without vnet header: logged"  grep -q "no IFF_VNET_HDR: no virtio-net header, no offloads" "$G/down4.log"
  fi
done
finish
