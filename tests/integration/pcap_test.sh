#!/usr/bin/env bash
# --pcap writes a classic pcap of the guest link that tshark and tcpdump read cleanly (R-OBS-5).
source "$(dirname "$0")/lib.sh" "$@"
pcap="$T_DIR/link.pcap"
check "run with --pcap" "$MOAT" run --profile all --pcap "$pcap" -- sh -c 'ping -c 2 -W 2 -i 0.2 100.96.0.1 && ping -6 -c 2 -W 2 -i 0.2 fd42:6d73:62::1'
check "pcap file exists" test -s "$pcap"
check "pcap mode is 0600" test "$(stat -c %a "$pcap")" = 600
check "tshark reads it cleanly" bash -c "tshark -r '$pcap' -n > '$T_DIR/tshark.txt' 2> '$T_DIR/tshark.log'"
check "echo requests captured"  test "$(tshark -r "$pcap" -n -Y 'icmp.type == 8' 2>/dev/null | wc -l)" -eq 2
check "echo replies captured"   test "$(tshark -r "$pcap" -n -Y 'icmp.type == 0' 2>/dev/null | wc -l)" -eq 2
check "ICMPv6 echo both ways"   test "$(tshark -r "$pcap" -n -Y 'icmpv6.type == 128 || icmpv6.type == 129' 2>/dev/null | wc -l)" -eq 4
check "no malformed packets"    bash -c "! tshark -r '$pcap' -n -Y '_ws.malformed || _ws.expert.severity >= error' 2>/dev/null | grep -q ."
check "tcpdump reads it"        bash -c "tcpdump -nn -r '$pcap' > /dev/null 2> '$T_DIR/tcpdump.log'"
finish
