#!/usr/bin/env bash
# moat-it-timeout: 240
# Config files and policy tooling (SPEC §4, §5.1, §5.2, R-CLI-1, R-CLI-7, R-CLI-8, R-POL-13/14):
#   moat policy check: good TOML/JSON (exit 0), bad file (exact §5.2 lines, exit 1), shadowed
#     and risky rules (warnings, exit 0; --strict exit 1), empty profile set, rules files, usage (2);
#   moat policy explain: allowed (0) / denied (1), CLI rules before the file's, --profile over
#     the file's profiles;
#   moat run --config: a bad file fails with 125 and leaves nothing behind (no link, no audit
#     file); a good file takes effect (addressing, rules), flags override its scalars and their
#     rules go first.
source "$(dirname "$0")/lib.sh" "$@"
NP="$(cd "$(dirname "$0")" && pwd)/tools/netpeer.py"
cd "$T_DIR"

# same FILE EXPECTED-TEXT: FILE holds exactly the expected text.
same() { diff -u <(printf '%s\n' "$2") "$1" > "$1.diff" || { cat "$1.diff"; return 1; }; }
# status WANT CMD...: runs CMD with stdout/stderr in out.txt/err.txt; true when it exits WANT.
status() {
  local want="$1" rc; shift
  set +e; "$@" > out.txt 2> err.txt; rc=$?; set -e
  [[ $rc -eq $want ]] || { echo "  $* -> $rc, want $want"; sed 's/^/  stderr: /' err.txt; return 1; }
}

# --- policy check --------------------------------------------------------------------------
cat > good.toml <<'T'
schema = 1
[gateway]
name = "agent-7"
[policy]
profiles = ["public"]
rules = [
  "allow@*.github.com:tcp:443",
  { action = "deny", cidr = "10.0.0.0/8", protocols = ["tcp"], ports = [5432, "6000-6010"], label = "lan" },
]
T
cat > good.json <<'T'
{"schema": 1, "gateway": {"name": "agent-7"},
 "policy": {"profiles": ["public"],
            "rules": ["allow@*.github.com:tcp:443",
                      {"action": "deny", "cidr": "10.0.0.0/8", "protocols": ["tcp"], "ports": [5432, "6000-6010"], "label": "lan"}]}}
T
check "check good.toml: exit 0" status 0 "$MOAT" policy check good.toml
check "check good.toml: summary" same out.txt "good.toml: valid: 4 rules, profiles public, default egress deny, default ingress allow"
check "check good.toml: no warnings" test ! -s err.txt
check "check good.json: exit 0" status 0 "$MOAT" policy check good.json --print
check "check good.json --print: the same policy" same out.txt "rule #0   config  allow@*.github.com:tcp:443
rule #1   config  deny@10.0.0.0/8:tcp:5432+6000-6010  [lan]
rule #2   profile allow@dns
rule #3   profile allow@public
good.json: valid: 4 rules, profiles public, default egress deny, default ingress allow"

cat > bad.toml <<'T'
schema = 2
[dns]
rebind_protecton = true
[tcp]
connect_timeout = "30"
[policy]
rules = [
  "allow@dns",
  "allow@10.1.2.0/8",
  { action = "allow", group = "privat" },
]
[tls]
bypass = ["*x.example"]
ports = [443, 0]
host_ca = [{ hosts = ["*.corp.example"] }]
T
check "check bad.toml: exit 1" status 1 "$MOAT" policy check bad.toml
check "check bad.toml: every error, exact" same err.txt 'moat: error: bad.toml:1:10: schema: unsupported schema 2 (this moat supports 1)
moat: error: bad.toml:3:1: dns.rebind_protecton: unknown key; did you mean "rebind_protection"?
moat: error: bad.toml:5:19: tcp.connect_timeout: "30" needs a unit (e.g. "30s")
moat: error: bad.toml:9:3: policy.rules[1]: 10.1.2.0/8 has host bits set; did you mean 10.0.0.0/8?
moat: error: bad.toml:10:31: policy.rules[2].group: unknown group "privat"; did you mean "private"?
moat: error: bad.toml:13:11: tls.bypass[0]: "*x.example" is not a host pattern; write NAME, *.SUFFIX or *
moat: error: bad.toml:14:15: tls.ports[1]: "0" is not a port; expected 1-65535
moat: error: bad.toml:15:12: tls.host_ca[0]: has no `file`'
check "check bad.toml: nothing on stdout" test ! -s out.txt

printf '{"dns": {"timeout": "1s",\n  "timeout": "2s"}}\n' > dup.json
check "check dup.json: exit 1" status 1 "$MOAT" policy check dup.json
check "check dup.json: duplicate key" same err.txt 'moat: error: dup.json:2:3: dns.timeout: duplicate key'
printf '{"dns": {"timeout": "1s" "deadline": "2s"}}\n' > syntax.json
check "check syntax.json: exit 1" status 1 "$MOAT" policy check syntax.json
check "check syntax.json: one line with LINE:COL" grep -qE '^moat: error: syntax\.json:1:[0-9]+: ' err.txt
check "check missing file: exit 1" status 1 "$MOAT" policy check /nonexistent/a.toml
check "check missing file: message" same err.txt 'moat: error: /nonexistent/a.toml: cannot open: No such file or directory'

cat > shadow.toml <<'T'
[policy]
rules = ["allow@public:tcp", "allow@public:tcp:443", "allow@metadata"]
T
check "check shadow.toml: exit 0 with warnings" status 0 "$MOAT" policy check shadow.toml
check "check shadow.toml: R-POL-13 warnings" same err.txt 'moat: warning: rule #1 "allow@public:tcp:443" is shadowed by rule #0 "allow@public:tcp" and never matches
moat: warning: rule #2 "allow@metadata" allows metadata addresses'
check "check shadow.toml --strict: exit 1" status 1 "$MOAT" policy check --strict shadow.toml

cat > empty.toml <<'T'
[policy]
default_egress = "deny"
rules = ["allow@dns", "allow@*.pypi.org:tcp:443"]
T
check "check empty.toml: exit 0" status 0 "$MOAT" policy check empty.toml
check "check empty.toml: says the profile set is empty" same out.txt "empty.toml: valid: 2 rules, profiles (empty), default egress deny, default ingress allow
empty.toml: the profile set is empty: only the explicit rules apply (default egress deny)"

printf '# one rule per line\nallow@dns\nallow@host:443   # a port without a protocol\ndeny@metadata, allow@publc\n' > policy.rules
check "check rules file: exit 1" status 1 "$MOAT" policy check policy.rules
check "check rules file: FILE:LINE:COL errors" same err.txt 'moat: error: policy.rules:3:12: "443" is not a protocol; write "allow@host:tcp:443"
moat: error: policy.rules:4:22: unknown target "publc"; did you mean "public"?'
check "check without FILE: exit 2" status 2 "$MOAT" policy check
check "check --bogus: exit 2" status 2 "$MOAT" policy check good.toml --bogus

# --- policy explain ------------------------------------------------------------------------
check "explain allowed: exit 0" status 0 "$MOAT" policy explain --config good.toml --dst api.github.com:443 --ip 140.82.112.3
check "explain allowed: report" same out.txt 'query    egress tcp 140.82.112.3:443 group=public name=api.github.com (sni) pins(140.82.112.3)={api.github.com}
dns      api.github.com -> allow by rule #0 (config) "allow@*.github.com:tcp:443"
rebind   a private answer (10.0.0.1) for api.github.com would pass (R-DNS-8 exception)
rule #0  config allow@*.github.com:tcp:443   MATCH (sni matches, pin matches)
rule #1  config deny@10.0.0.0/8:tcp:5432+6000-6010 skip: port
rule #2  profile allow@dns                    skip: port
rule #3  profile allow@public                 MATCH
verdict  allow (tenant) / allow (floor: none)     path: fast path
by       rule #0 (config) "allow@*.github.com:tcp:443"
no-name  allow by rule #0 (config) "allow@*.github.com:tcp:443" (a first packet without SNI/Host: pins only)'
check "explain denied (file rule): exit 1" status 1 "$MOAT" policy explain --config good.toml --dst 10.1.2.3:5432
check "explain denied: verdict and rule" bash -c "grep -q '^verdict  deny (tenant)' out.txt && grep -q '^by       rule #1 (config) \"deny@10.0.0.0/8:tcp:5432+6000-6010\" \[lan\]' out.txt"
check "explain: --rule goes before the file's rules (exit 0)" status 0 "$MOAT" policy explain --dst 10.1.2.3:5432 --config good.toml --rule allow@10.1.2.3:tcp:5432
check "explain: rule #0 is the CLI rule and decides" bash -c "grep -q '^rule #0  cli    allow@10.1.2.3:tcp:5432' out.txt && grep -q '^by       rule #0 (cli)' out.txt"
check "explain: --profile none overrides the file's profiles (exit 1)" status 1 "$MOAT" policy explain --config good.toml --profile none --dst 44.1.1.1:80
check "explain: metadata denied by default (exit 1)" status 1 "$MOAT" policy explain --dst 169.254.169.254:80
check "explain: metadata query names its group" grep -q '^query    egress tcp 169.254.169.254:80 group=metadata' out.txt
check "explain: usage error exit 2" status 2 "$MOAT" policy explain --dst nohost
check "explain: usage error message" same err.txt 'moat: error: --dst: "nohost" has no port; write HOST:PORT[/tcp|/udp|/icmp]'

# --- run --config --------------------------------------------------------------------------
start_bg dns "$NP" dns --port 15353 --name cfg-test.example.com --addr 44.1.1.1 --ready-file "$T_DIR/dns.ready" --max-seconds 200
ip link add pub0 type veth peer name pub1
ip link set pub1 up
ip link set pub0 up
ip addr add 44.1.1.1/32 dev pub0
start_bg http80 timeout 200 python3 -m http.server --bind 44.1.1.1 8080
start_bg http81 timeout 200 python3 -m http.server --bind 44.1.1.1 8081
check "servers ready" wait_for 15 bash -c "test -s '$T_DIR/dns.ready' && curl -sf -o /dev/null http://44.1.1.1:8080/ && curl -sf -o /dev/null http://44.1.1.1:8081/"

links_before="$(ip -o link | wc -l)"
cat > badrun.toml <<T
[audit]
file = "$T_DIR/should-not-exist.jsonl"
[net.ipv4]
address = "10.77.0.2"
prefix = 24
gateway = "10.77.0.255"
[policy]
rules = ["allow@public:tcp:0"]
T
check "run --config bad: exit 125" status 125 "$MOAT" run --dns-upstream 127.0.0.1:15353 --config badrun.toml -- true
check "run --config bad: every error" same err.txt "moat: error: badrun.toml:8:10: policy.rules[0]: port 0 is out of range (1-65535)"
check "run --config bad: no audit file" test ! -e "$T_DIR/should-not-exist.jsonl"
check "run --config bad: no link left" test "$(ip -o link | wc -l)" -eq "$links_before"
sed -i 's/allow@public:tcp:0/allow@public/' badrun.toml
check "run --config bad address: exit 125" status 125 "$MOAT" run --config badrun.toml --dns-upstream 127.0.0.1:15353 -- true
check "run --config bad address: names the key" same err.txt "moat: error: badrun.toml: net.ipv4.gateway: 10.77.0.255 is the broadcast address of 10.77.0.0/24"
check "run --config bad address: no audit file" test ! -e "$T_DIR/should-not-exist.jsonl"
check "attach --config bad: exit 2" status 2 "$MOAT" attach --netns /run/netns/none --config bad.toml
check "attach --config bad: the file's errors" grep -q '^moat: error: bad.toml:1:10: schema: unsupported schema 2' err.txt
check "serve --config bad: exit 2, no socket" status 2 "$MOAT" serve --config bad.toml --unixgram "$T_DIR/vm.sock"
check "serve --config bad: no socket file" test ! -e "$T_DIR/vm.sock"
check "run --config missing: exit 125" status 125 "$MOAT" run --config /nonexistent/x.toml -- true
check "run --config missing: message" same err.txt "moat: error: /nonexistent/x.toml: cannot open: No such file or directory"

cat > run.toml <<T
schema = 1
[net.ipv4]
address = "10.77.0.2"
prefix = 24
gateway = "10.77.0.1"
[net.ipv6]
enable = "off"
[dns]
upstreams = ["127.0.0.1:9"]
[policy]
rules = ["deny@44.1.1.1"]
[[publish]]
host_port = 18091
guest_port = 8091
[audit]
file = "audit.jsonl"
T
# --gateway4 (a scalar) overrides the file; --rule goes before the file's deny;
# --dns-upstream replaces the file's (dead) upstream; -p appends to the file's publish
# list; the audit path is relative to the file's directory.
timeout 120 "$MOAT" run --dns-upstream 127.0.0.1:15353 --gateway4 10.77.0.9 --config "$T_DIR/run.toml" \
  --rule allow@44.1.1.1:tcp:8081 -p 18092:8092 --ready-file "$T_DIR/run.ready" -- sh -c "
  echo \"dns \$(kdig +timeout=3 +retry=0 @10.77.0.9 cfg-test.example.com A +short)\"
  ip -4 -o addr show eth0 | awk '{print \"addr\", \$4}'
  ip -4 route show default | awk '{print \"route\", \$3}'
  '$NP' connect --host 44.1.1.1 --port 8080 --timeout 5 | sed 's/^/p8080 /'
  curl -sS --max-time 5 -o /dev/null -w 'p8081 %{http_code}\n' http://44.1.1.1:8081/
  sleep 2  # the test looks at the published ports meanwhile
" > run.out 2> run-moat.log &
moat_pid=$!
check "run --config good: ready" wait_for 20 test -s "$T_DIR/run.ready"
ss -Hltn > listeners.txt
check "run --config good: the file's publish listens" grep -q '127.0.0.1:18091 ' listeners.txt
check "run --config good: -p appends to the file's publish" grep -q '127.0.0.1:18092 ' listeners.txt
set +e; wait $moat_pid; rc=$?; set -e
sed 's/^/[run] /' run.out
check "run --config good: exit 0 (got $rc)" test $rc -eq 0
check "run --config good: --dns-upstream replaces the file's upstreams" grep -q '^dns 44.1.1.1$' run.out
check "run --config good: the file's address" grep -q '^addr 10.77.0.2/24$' run.out
check "run --config good: --gateway4 overrides the file" grep -q '^route 10.77.0.9$' run.out
check "run --config good: the file's deny rule applies" grep -q '^p8080 ECONNREFUSED' run.out
check "run --config good: the CLI rule goes first" grep -q '^p8081 200$' run.out
check "run --config good: audit file next to the config" test -s "$T_DIR/audit.jsonl"
finish
