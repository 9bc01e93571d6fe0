#!/usr/bin/env bash
# moat-it-timeout: 240
# DNS interception (SPEC R-DNS-1..10): a zone server the test starts on 127.0.0.1 is the
# upstream; the guest asks with kdig over UDP and TCP. Ordinary and CNAME answers, the block
# list (the upstream never sees blocked names), name policy, rebind protection and its
# allow-rule exception, host.moat.internal and --dns-host, NODATA for an inactive family,
# direct queries to another resolver (on an address inside this test's namespace),
# failover (refused and silent upstreams), SERVFAIL, FORMERR/NOTIMP, EDNS truncation and
# the upstream's TC -> TCP retry, and the refused alternative ports.
source "$(dirname "$0")/lib.sh" "$@"
TOOLS="$(cd "$(dirname "$0")" && pwd)/tools"
ZONE="$TOOLS/dnszone.py"

# The upstream (127.0.0.1:15301), a silent one (15302), nothing on 15399; a "direct"
# resolver on 10.53.0.53:53 inside this namespace that answers www with another address.
ip link add dnsdirect0 type veth peer name dnsdirect1
ip addr add 10.53.0.53/32 dev dnsdirect0
ip link set dnsdirect0 up
ip link set dnsdirect1 up
start_bg up1 "$ZONE" --port 15301 --log "$T_DIR/up1.q" --ready-file "$T_DIR/up1.ready" --max-seconds 200
start_bg silent "$ZONE" --port 15302 --silent --log "$T_DIR/silent.q" --ready-file "$T_DIR/silent.ready" --max-seconds 200
start_bg direct "$ZONE" --bind 10.53.0.53 --port 53 --www-addr 93.184.216.99 --log "$T_DIR/direct.q" \
  --ready-file "$T_DIR/direct.ready" --max-seconds 200
check "zone servers ready" wait_for 10 bash -c "test -s '$T_DIR/up1.ready' -a -s '$T_DIR/silent.ready' -a -s '$T_DIR/direct.ready'"

# Guest-side helper: raw queries (FORMERR / NOTIMP / garbage) and port probes.
cat > "$T_DIR/probe.py" <<'EOF'
import socket, struct, sys
def q(payload, timeout=2):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.connect(("100.96.0.1", 53))
    s.send(payload)
    try:
        r = s.recv(4096)
    except socket.timeout:
        return "timeout"
    hid, flags = struct.unpack("!HH", r[:4])
    return "id=%d rcode=%d qd=%d" % (hid, flags & 15, struct.unpack("!H", r[4:6])[0])
name = b"\x03www\x07example\x03com\x00"
what = sys.argv[1]
if what == "formerr":   # two questions
    print("formerr", q(struct.pack("!HHHHHH", 4242, 0x0100, 2, 0, 0, 0) + (name + b"\x00\x01\x00\x01") * 2))
elif what == "notimp":  # opcode STATUS (2)
    print("notimp", q(struct.pack("!HHHHHH", 4243, 0x1100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"))
elif what == "garbage":
    print("garbage", q(b"\x01\x02\x03", timeout=1))
elif what == "udp":     # a UDP port: refused (ICMP port unreachable) or not
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect(("100.96.0.1", int(sys.argv[2])))
    s.send(b"x")
    try:
        s.recv(100)
        print("udp", sys.argv[2], "answered")
    except ConnectionRefusedError:
        print("udp", sys.argv[2], "refused")
    except socket.timeout:
        print("udp", sys.argv[2], "timeout")
elif what == "tcp":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(("100.96.0.1", int(sys.argv[2])))
        print("tcp", sys.argv[2], "connected")
    except ConnectionRefusedError:
        print("tcp", sys.argv[2], "refused")
    except OSError as e:
        print("tcp", sys.argv[2], "error", e)
EOF

K="kdig +timeout=3 +retry=0"
cat > "$T_DIR/guest-a.sh" <<EOF
st() { grep -o 'status: [A-Z]*' | head -1 | cut -d' ' -f2; }
echo "udp4: \$($K @100.96.0.1 +notcp www.example.com A +short)"
echo "tcp4: \$($K @100.96.0.1 +tcp www.example.com A +short)"
echo "udp6: \$($K @fd42:6d73:62::1 +notcp www.example.com AAAA +short)"
echo "tcp6: \$($K @fd42:6d73:62::1 +tcp www.example.com AAAA +short)"
echo "cname: \$($K @100.96.0.1 alias.example.com A +short | tr '\n' ' ')"
echo "blocked: \$($K @100.96.0.1 blocked.example.com A | st)"
echo "blocked-aaaa-tcp: \$($K @100.96.0.1 +tcp blocked.example.com AAAA | st)"
echo "blocked-suffix: \$($K @100.96.0.1 x.ads.example TXT | st)"
echo "blocked-apex: \$($K @100.96.0.1 ads.example A | st)"
echo "denied: \$($K @100.96.0.1 denied.example.com A | st)"
echo "rebind127: \$($K @100.96.0.1 rebind127.example.com A | st)"
echo "rebindmeta: \$($K @100.96.0.1 meta.example.com A | st)"
echo "rebind10-allowed: \$($K @100.96.0.1 rebind10.example.com A +short)"
echo "hostint: \$($K @100.96.0.1 host.moat.internal A +short) \$($K @100.96.0.1 host.moat.internal AAAA +short)"
echo "hostint-flags: \$($K @100.96.0.1 host.moat.internal A | grep -o 'Flags: [a-z ]*' | head -1)"
echo "dnshost: \$($K @100.96.0.1 db.internal A +short)"
echo "direct-udp: \$($K @10.53.0.53 +notcp www.example.com A +short)"
echo "direct-tcp: \$($K @10.53.0.53 +tcp www.example.com A +short)"
echo "direct-denied: \$($K @10.53.0.54 +notcp www.example.com A | st)"
echo "direct-denied-tcp: \$($K @10.53.0.54 +tcp www.example.com A | st)"
echo "nx: \$($K @100.96.0.1 nonexistent.example.com A | st)"
echo "noedns-tc: \$($K @100.96.0.1 +notcp +noedns +ignore big.example.com A | grep -o 'Flags: [a-z ]*' | head -1)"
echo "noedns-retry: \$($K @100.96.0.1 +noedns big.example.com A +short | grep -c '^93[.]184[.]217[.]')"
echo "edns4096: \$($K @100.96.0.1 +notcp +bufsize=4096 +ignore big.example.com A +short | grep -c '^93[.]184[.]217[.]')"
echo "upstream-tc: \$($K @100.96.0.1 +notcp tc.example.com A +short)"
echo "loop: \$($K @100.96.0.1 loop.example.com A | st)"
python3 "$T_DIR/probe.py" formerr
python3 "$T_DIR/probe.py" notimp
python3 "$T_DIR/probe.py" garbage
python3 "$T_DIR/probe.py" udp 5353
python3 "$T_DIR/probe.py" udp 853
python3 "$T_DIR/probe.py" tcp 853
python3 "$T_DIR/probe.py" tcp 5355
exit 0
EOF

set +e
timeout 100 "$MOAT" run --dns-upstream 127.0.0.1:15301 --dns-block blocked.example.com --dns-block '*.ads.example' \
  --rule deny@denied.example.com --rule allow@rebind10.example.com --dns-host db.internal=10.0.0.5 \
  --rule allow@10.53.0.53:udp:53,allow@10.53.0.53:tcp:53 --audit "$T_DIR/audit.jsonl" -- sh "$T_DIR/guest-a.sh" \
  > "$T_DIR/a.out" 2> "$T_DIR/a-moat.log"
rc=$?
set -e
cat "$T_DIR/a.out"
out="$T_DIR/a.out"
check "moat run exits 0 (got $rc)"                         test $rc -eq 0
check "UDP A answered by the upstream"                     grep -qx "udp4: 93.184.216.34" "$out"
check "TCP A answered by the upstream"                     grep -qx "tcp4: 93.184.216.34" "$out"
check "UDP AAAA over IPv6"                                 grep -qx "udp6: 2606:2800:220:1::1" "$out"
check "TCP AAAA over IPv6"                                 grep -qx "tcp6: 2606:2800:220:1::1" "$out"
check "CNAME chain answered"                               grep -qx "cname: www.example.com. 93.184.216.34 " "$out"
check "blocked name -> NXDOMAIN"                           grep -qx "blocked: NXDOMAIN" "$out"
check "blocked name over TCP, any type -> NXDOMAIN"        grep -qx "blocked-aaaa-tcp: NXDOMAIN" "$out"
check "*.suffix block -> NXDOMAIN"                         grep -qx "blocked-suffix: NXDOMAIN" "$out"
check "*.suffix block covers the apex"                     grep -qx "blocked-apex: NXDOMAIN" "$out"
check "the upstream never saw a blocked name"              bash -c "! grep -Eq 'blocked.example.com|ads.example' '$T_DIR/up1.q'"
check "--rule deny@name -> NXDOMAIN"                       grep -qx "denied: NXDOMAIN" "$out"
check "the upstream never saw the denied name"             bash -c "! grep -q 'denied.example.com' '$T_DIR/up1.q'"
check "answer with 127.0.0.1 -> NXDOMAIN (rebind)"         grep -qx "rebind127: NXDOMAIN" "$out"
check "answer with 169.254.169.254 -> NXDOMAIN (rebind)"   grep -qx "rebindmeta: NXDOMAIN" "$out"
check "allow@name grants the rebind exception"             grep -qx "rebind10-allowed: 10.1.2.3" "$out"
check "host.moat.internal A and AAAA"                      grep -qx "hostint: 100.96.0.1 fd42:6d73:62::1" "$out"
check "host.moat.internal is authoritative"                grep -q "hostint-flags: Flags: qr aa" "$out"
check "--dns-host answered locally"                        grep -qx "dnshost: 10.0.0.5" "$out"
check "local names never go upstream"                      bash -c "! grep -Eq 'moat.internal|db.internal' '$T_DIR/up1.q'"
check "direct UDP query answered by that resolver"         grep -qx "direct-udp: 93.184.216.99" "$out"
check "direct TCP query answered by that resolver"         grep -qx "direct-tcp: 93.184.216.99" "$out"
check "the direct resolver saw UDP and TCP"                bash -c "grep -q '^udp www.example.com 1' '$T_DIR/direct.q' && grep -q '^tcp www.example.com 1' '$T_DIR/direct.q'"
check "direct query to a resolver policy denies -> NXDOMAIN" grep -qx "direct-denied: NXDOMAIN" "$out"
check "... over TCP too (answered by moat, not RST)"       grep -qx "direct-denied-tcp: NXDOMAIN" "$out"
check "upstream NXDOMAIN relayed"                          grep -qx "nx: NXDOMAIN" "$out"
check "no EDNS: a 700-byte answer is truncated (TC)"       grep -Eq "noedns-tc: Flags: qr.* tc" "$out"
check "no EDNS: the client's TCP retry gets all 40"        grep -qx "noedns-retry: 40" "$out"
check "EDNS 4096: all 40 records over UDP"                 grep -qx "edns4096: 40" "$out"
check "upstream TC=1 retried over TCP by moat"             grep -qx "upstream-tc: 93.184.216.36" "$out"
check "... the upstream saw the TCP retry"                 grep -q "^tcp tc.example.com 1" "$T_DIR/up1.q"
check "a CNAME loop is relayed (nothing pinned)"           grep -qx "loop: NOERROR" "$out"
check "two questions -> FORMERR, ID echoed"                grep -qx "formerr id=4242 rcode=1 qd=0" "$out"
check "opcode STATUS -> NOTIMP, question echoed"           grep -qx "notimp id=4243 rcode=4 qd=1" "$out"
check "garbage is dropped (no answer)"                     grep -qx "garbage timeout" "$out"
check "UDP 5353 (mDNS) refused"                            grep -qx "udp 5353 refused" "$out"
check "UDP 853 (DoQ) refused"                              grep -qx "udp 853 refused" "$out"
check "TCP 853 (DoT) reset"                                grep -qx "tcp 853 refused" "$out"
check "TCP 5355 (LLMNR) refused"                           grep -qx "tcp 5355 refused" "$out"
audit="$T_DIR/audit.jsonl"
check "audit: dns_blocked with the name"                   grep -q '"ev":"dns_blocked".*"qname":"blocked.example.com"' "$audit"
check "audit: dns_denied names the deciding rule"          grep -q '"ev":"dns_denied".*"text":"deny@denied.example.com".*"qname":"denied.example.com"' "$audit"
check "audit: dns_rebind_blocked with the address"         grep -q '"ev":"dns_rebind_blocked".*"qname":"rebind127.example.com".*"address":"127.0.0.1"' "$audit"
check "audit: no dns_query by default"                     bash -c "! grep -q '\"ev\":\"dns_query\"' '$audit'"

# --- NODATA for an inactive family (R-DNS-3 step 3): AAAA with IPv6 off never goes upstream.
: > "$T_DIR/up1.q"
set +e
timeout 60 "$MOAT" run --no-ipv6 --dns-upstream 127.0.0.1:15301 -- sh -c "
  $K @100.96.0.1 www.example.com AAAA | grep -Eo 'status: [A-Z]*|ANSWER: [0-9]+' | tr '\n' ' ' | sed 's/^/nodata: /'; echo
  echo \"a-still: \$($K @100.96.0.1 www.example.com A +short)\"
" > "$T_DIR/b.out" 2> "$T_DIR/b-moat.log"
set -e
cat "$T_DIR/b.out"
check "AAAA with IPv6 inactive -> NOERROR, no answer"      grep -qx "nodata: status: NOERROR ANSWER: 0 " "$T_DIR/b.out"
check "... and A still works"                              grep -qx "a-still: 93.184.216.34" "$T_DIR/b.out"
check "... the upstream was never asked for AAAA"          bash -c "! grep -q ' 28$' '$T_DIR/up1.q'"

# --- Failover (R-DNS-4): a refused upstream, then a silent one, then all dead -> SERVFAIL.
set +e
timeout 60 "$MOAT" run --dns-upstream 127.0.0.1:15399 --dns-upstream 127.0.0.1:15301 -- sh -c "
  echo \"refused-first: \$($K @100.96.0.1 www.example.com A +short)\"
" > "$T_DIR/c.out" 2> "$T_DIR/c-moat.log"
timeout 60 "$MOAT" run --dns-timeout 500ms --dns-upstream 127.0.0.1:15302 --dns-upstream 127.0.0.1:15301 -- sh -c "
  echo \"silent-first: \$($K @100.96.0.1 www.example.com A +short)\"
  echo \"silent-first-tcp: \$($K @100.96.0.1 +tcp www.example.com A +short)\"
" >> "$T_DIR/c.out" 2>> "$T_DIR/c-moat.log"
timeout 60 "$MOAT" run --dns-timeout 300ms --dns-upstream 127.0.0.1:15302 -- sh -c "
  $K @100.96.0.1 www.example.com A | grep -o 'status: [A-Z]*' | sed 's/^/all-dead: /'
" >> "$T_DIR/c.out" 2>> "$T_DIR/c-moat.log"
set -e
cat "$T_DIR/c.out"
check "first upstream refused -> the second answers"      grep -qx "refused-first: 93.184.216.34" "$T_DIR/c.out"
check "first upstream silent -> the second answers (UDP)" grep -qx "silent-first: 93.184.216.34" "$T_DIR/c.out"
check "first upstream silent -> the second answers (TCP)" grep -qx "silent-first-tcp: 93.184.216.34" "$T_DIR/c.out"
check "every upstream silent -> SERVFAIL"                 grep -qx "all-dead: status: SERVFAIL" "$T_DIR/c.out"

# --- Bad flags (§5.2): a block file with a bad line, a bad --dns-host.
printf '# ads\n0.0.0.0 ok.example.com\nex ample.com\n' > "$T_DIR/block.txt"
set +e
"$MOAT" run --dns-block-file "$T_DIR/block.txt" -- true 2> "$T_DIR/bad1.err"; rc1=$?
"$MOAT" run --dns-host db=nope -- true 2> "$T_DIR/bad2.err"; rc2=$?
set -e
cat "$T_DIR/bad1.err" "$T_DIR/bad2.err"
check "bad block-file line -> exit 125"                    test $rc1 -eq 125
check "... FILE:LINE: \"x\" is not a valid name"           grep -qx "moat: error: $T_DIR/block.txt:3: \"ex ample.com\" is not a valid name" "$T_DIR/bad1.err"
check "bad --dns-host -> exit 125 and the flag named"      bash -c "test $rc2 -eq 125 && grep -q '^moat: error: --dns-host: \"nope\" is not an IP address' '$T_DIR/bad2.err'"
finish
