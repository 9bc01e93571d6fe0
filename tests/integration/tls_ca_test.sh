#!/usr/bin/env bash
# The interception CA and guest trust: `moat ca init/show/path` (R-CLI-6) on a temporary
# XDG_DATA_HOME (modes 0700/0600, the flock making one CA out of concurrent inits, --force
# keeping *.old, bad files -> exit 2 naming the file, never regenerated), `moat run --tls`
# with a bad CA (exit 125, the command never runs), and R-TLS-10 inside `moat run --tls`:
# the five variables name readable files holding moat's CA, the system bundle path shows the
# merged bundle under bind+env (not under --ca-trust env), nothing under --ca-trust none,
# the host's bundle untouched and the files gone afterwards. moat runs with its default
# --seccomp on and, as root, drops to nobody: the CA is loaded during setup.
source "$(dirname "$0")/lib.sh" "$@"
TOOLS="$(cd "$(dirname "$0")" && pwd)/tools"
command -v openssl >/dev/null || { echo "SKIP: openssl is not installed"; exit 77; }

# The DNS upstream moat is pointed at (never the host's resolv.conf); nothing here resolves.
start_bg dns "$TOOLS/dnszone.py" --port 15353 --log "$T_DIR/dns.q" --ready-file "$T_DIR/dns.ready" --max-seconds 200
wait_for 10 test -e "$T_DIR/dns.ready" || fail "DNS test server did not start"
UP=(--dns-upstream 127.0.0.1:15353)

export XDG_DATA_HOME="$T_DIR/xdg"
D="$XDG_DATA_HOME/moat"
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//'; }

# expect_exit CODE PATTERN LOG CMD...: CMD exits CODE and its stderr (kept in LOG) matches PATTERN.
expect_exit() {
  local code="$1" pat="$2" log="$3"; shift 3
  local rc=0
  "$@" > "$log.out" 2> "$log" || rc=$?
  if [[ $rc -eq $code ]] && grep -qE -- "$pat" "$log"; then pass "exit $code, '$pat': $(head -c 200 "$log")"
  else fail "expected exit $code and '$pat', got $rc: $(head -c 300 "$log")"; fi
}

# --- moat ca path / show / init ------------------------------------------------------------
check "ca path names ca.crt"                test "$("$MOAT" ca path)" = "$D/ca.crt"
check "ca path --key names ca.key"          test "$("$MOAT" ca path --key)" = "$D/ca.key"
check "ca path creates nothing"             test ! -e "$D"
expect_exit 2 "^moat: error: $D/ca.crt: no CA yet" "$T_DIR/show0.err" "$MOAT" ca show
check "ca show creates nothing"             test ! -e "$D"
expect_exit 2 "unknown subcommand" "$T_DIR/bogus.err" "$MOAT" ca bogus
expect_exit 2 "^moat: error: --nope: unknown option" "$T_DIR/badflag.err" "$MOAT" ca init --nope
check "bad flag creates nothing"            test ! -e "$D"

out=$("$MOAT" ca init 2> "$T_DIR/init1.err")
check "ca init prints the certificate path" test "$out" = "$D/ca.crt"
check "ca init says it created the CA"      grep -q "created a new interception CA" "$T_DIR/init1.err"
check "directory is 0700"                   test "$(stat -c %a "$D")" = 700
check "key is 0600"                         test "$(stat -c %a "$D/ca.key")" = 600
check "ca.lock exists"                      test -e "$D/ca.lock"
check "no temporary files left"             bash -c "! ls '$D' | grep -q tmp"
check "cert is a CA: CA:TRUE, pathlen 0"    bash -c "openssl x509 -in '$D/ca.crt' -noout -ext basicConstraints | grep -q 'CA:TRUE, pathlen:0'"
check "key usage keyCertSign, cRLSign"      bash -c "openssl x509 -in '$D/ca.crt' -noout -ext keyUsage | grep -q 'Certificate Sign, CRL Sign'"
check "subject CN and O"                    bash -c "openssl x509 -in '$D/ca.crt' -noout -subject | grep -q 'CN = moat interception CA (.*@.*), O = moat'"
check "ECDSA P-256 key"                     bash -c "openssl pkey -in '$D/ca.key' -noout -text | grep -q 'NIST CURVE: P-256'"
check "key matches the certificate"         test "$(openssl x509 -in "$D/ca.crt" -noout -pubkey)" = "$(openssl pkey -in "$D/ca.key" -pubout)"
FP1=$(fp "$D/ca.crt")
out=$("$MOAT" ca init 2> "$T_DIR/init2.err")
check "second init prints the path"         test "$out" = "$D/ca.crt"
check "second init creates nothing"         bash -c "! grep -q created '$T_DIR/init2.err'"
check "second init keeps the CA"            test "$(fp "$D/ca.crt")" = "$FP1"

"$MOAT" ca show > "$T_DIR/show.pem"
check "ca show prints the PEM"              cmp -s "$T_DIR/show.pem" "$D/ca.crt"
"$MOAT" ca show --text > "$T_DIR/show.txt"
check "show --text: subject"                grep -q "^Subject: .*CN = moat interception CA" "$T_DIR/show.txt"
check "show --text: SHA-256 = openssl's"    grep -q "^SHA-256: *$FP1\$" "$T_DIR/show.txt"
check "show --text: validity"               bash -c "grep -q '^Not before: ' '$T_DIR/show.txt' && grep -q '^Not after: ' '$T_DIR/show.txt'"
check "show --text: then the PEM"           grep -q -- "-----BEGIN CERTIFICATE-----" "$T_DIR/show.txt"

# --force keeps the old pair as *.old.
cp "$D/ca.key" "$T_DIR/key1"
"$MOAT" ca init --force > /dev/null 2> "$T_DIR/force.err"
check "--force creates a new CA"            test "$(fp "$D/ca.crt")" != "$FP1"
check "--force keeps ca.crt.old"            test "$(fp "$D/ca.crt.old")" = "$FP1"
check "--force keeps ca.key.old"            cmp -s "$D/ca.key.old" "$T_DIR/key1"
check "new key is 0600"                     test "$(stat -c %a "$D/ca.key")" = 600
FP2=$(fp "$D/ca.crt")

# The flock: concurrent inits on an empty store make exactly one CA.
rm -rf "$XDG_DATA_HOME"
pids=()
for i in 1 2 3 4 5 6; do "$MOAT" ca init > "$T_DIR/c$i.out" 2> "$T_DIR/c$i.err" & pids+=($!); done
rc_all=0
for p in "${pids[@]}"; do wait "$p" || rc_all=1; done
check "six concurrent inits all succeed"    test $rc_all -eq 0
check "exactly one of them created the CA"  test "$(cat "$T_DIR"/c?.err | grep -c 'created a new interception CA')" -eq 1
check "all print the same path"             test "$(cat "$T_DIR"/c?.out | sort -u)" = "$D/ca.crt"
check "the pair on disk matches"            test "$(openssl x509 -in "$D/ca.crt" -noout -pubkey)" = "$(openssl pkey -in "$D/ca.key" -pubout)"
created_fp=$(grep -h 'created a new interception CA' "$T_DIR"/c?.err | sed 's/.*SHA-256 \(.*\))/\1/')
check "the CA on disk is the one created"   test "$created_fp" = "$(fp "$D/ca.crt")"
FP3=$(fp "$D/ca.crt")

# --- bad files: exit 2 naming the file, never regenerated ----------------------------------
cp "$D/ca.crt" "$T_DIR/good.crt"; cp "$D/ca.key" "$T_DIR/good.key"
echo "garbage" > "$D/ca.crt"
expect_exit 2 "^moat: error: $D/ca.crt: not a PEM certificate.*moat ca init --force" "$T_DIR/bad1.err" "$MOAT" ca show
expect_exit 2 "^moat: error: $D/ca.crt: not a PEM certificate" "$T_DIR/bad2.err" "$MOAT" ca init
check "a broken CA is never regenerated"    test "$(cat "$D/ca.crt")" = garbage
cp "$T_DIR/good.crt" "$D/ca.crt"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/ca.key" 2>/dev/null
expect_exit 2 "^moat: error: $D/ca.key: does not match the certificate $D/ca.crt" "$T_DIR/bad3.err" "$MOAT" ca show
rm "$D/ca.key"
expect_exit 2 "^moat: error: $D/ca.key: is missing but $D/ca.crt exists" "$T_DIR/bad4.err" "$MOAT" ca init
check "half pair: nothing recreated"        test ! -e "$D/ca.key"
# moat run --tls with the bad persistent CA: 125, the command never runs.
expect_exit 125 "^moat: error: $D/ca.key: is missing" "$T_DIR/run-bad1.err" \
  "$MOAT" run --tls "${UP[@]}" -- touch "$T_DIR/ran1"
check "run --tls, bad CA: command not run"  test ! -e "$T_DIR/ran1"
check "run --tls, bad CA: key not created"  test ! -e "$D/ca.key"
cp "$T_DIR/good.key" "$D/ca.key"; chmod 600 "$D/ca.key"
# A user-supplied pair: not a CA, unreadable, half given.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=leaf -days 2 \
  -addext basicConstraints=critical,CA:FALSE -keyout "$T_DIR/leaf.key" -out "$T_DIR/leaf.crt" 2>/dev/null
expect_exit 125 "^moat: error: $T_DIR/leaf.crt: is not a CA certificate" "$T_DIR/run-bad2.err" \
  "$MOAT" run --tls --tls-ca-cert "$T_DIR/leaf.crt" --tls-ca-key "$T_DIR/leaf.key" "${UP[@]}" -- touch "$T_DIR/ran2"
check "run, non-CA cert: command not run"   test ! -e "$T_DIR/ran2"
expect_exit 125 "^moat: error: $T_DIR/none.crt: cannot open: No such file" "$T_DIR/run-bad3.err" \
  "$MOAT" run --tls --tls-ca-cert "$T_DIR/none.crt" --tls-ca-key "$T_DIR/leaf.key" "${UP[@]}" -- touch "$T_DIR/ran3"
expect_exit 125 "tls.ca_key" "$T_DIR/run-bad4.err" \
  "$MOAT" run --tls --tls-ca-cert "$T_DIR/good.crt" "${UP[@]}" -- touch "$T_DIR/ran4"
check "run, bad pairs: commands not run"    bash -c "test ! -e '$T_DIR/ran3' && test ! -e '$T_DIR/ran4'"
# A good user-supplied pair works (the same files as the persistent CA, given by path).
check "run with --tls-ca-cert/--tls-ca-key" "$MOAT" run --tls --tls-ca-cert "$T_DIR/good.crt" --tls-ca-key "$T_DIR/good.key" \
  "${UP[@]}" -- sh -c "cmp -s \"\$NODE_EXTRA_CA_CERTS\" '$T_DIR/good.crt'" 2> "$T_DIR/run-user.log"

# --- guest trust (R-TLS-10) ----------------------------------------------------------------
SYS=""
for b in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
  [[ -e "$b" ]] && { SYS="$b"; break; }
done
SYS_SUM=$( [[ -n "$SYS" ]] && sha256sum < "$SYS" || echo none)
# Inside: each variable, whether its file is readable and holds the moat CA (the PEM that
# NODE_EXTRA_CA_CERTS names, checked to be moat's by its subject), and the system bundle.
probe='ca="$NODE_EXTRA_CA_CERTS"
echo "CA=$ca"
openssl x509 -in "$ca" -noout -subject
for v in SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO; do
  f=$(printenv $v); if [ -r "$f" ] && grep -qxFf "$ca" "$f" && [ "$(grep -cxFf "$ca" "$f")" -ge "$(wc -l < "$ca")" ]; then echo "$v=ok $f"; else echo "$v=bad $f"; fi
done
openssl verify -CAfile "$SSL_CERT_FILE" "$ca" && echo VERIFY=ok
if [ -n "$1" ] && grep -q "moat interception CA (R-TLS-10)" "$1"; then echo SYS=merged; else echo SYS=plain; fi
dirname "$ca"'
run_probe() {  # OUT CA_TRUST ARGS...; the status in PROBE_RC
  local out="$1" mode="$2"; shift 2
  PROBE_RC=0
  env -u SSL_CERT_FILE -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE -u GIT_SSL_CAINFO -u NODE_EXTRA_CA_CERTS \
    timeout 60 "$MOAT" run --tls --ca-trust "$mode" "${UP[@]}" "$@" -- sh -c "$probe" probe "$SYS" \
    > "$out" 2> "$out.err" || PROBE_RC=$?
}

run_probe "$T_DIR/trust1.out" bind+env --tls-ephemeral-ca
check "bind+env: run exits 0 (got $PROBE_RC)" test "$PROBE_RC" -eq 0
check "bind+env: the CA is moat's"          grep -q "subject=CN = moat interception CA" "$T_DIR/trust1.out"
for v in SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO; do
  check "bind+env: $v names a readable bundle with the CA" grep -q "^$v=ok " "$T_DIR/trust1.out"
done
check "bind+env: OpenSSL trusts the CA through SSL_CERT_FILE" grep -q "^VERIFY=ok" "$T_DIR/trust1.out"
if [[ -n "$SYS" ]]; then
  check "bind+env: $SYS shows the merged bundle" grep -q "^SYS=merged" "$T_DIR/trust1.out"
fi
cadir=$(tail -n 1 "$T_DIR/trust1.out")
check "bind+env: the CA files are removed after the run ($cadir)" wait_for 5 test ! -e "$cadir"
check "ephemeral CA: the persistent one is untouched" test "$(fp "$D/ca.crt")" = "$FP3"

run_probe "$T_DIR/trust2.out" env --tls-ephemeral-ca
check "env: run exits 0 (got $PROBE_RC)"    test "$PROBE_RC" -eq 0
check "env: variables set"                  grep -q "^SSL_CERT_FILE=ok " "$T_DIR/trust2.out"
check "env: NODE_EXTRA_CA_CERTS is moat's"  grep -q "subject=CN = moat interception CA" "$T_DIR/trust2.out"
if [[ -n "$SYS" ]]; then
  check "env: $SYS is not replaced"         grep -q "^SYS=plain" "$T_DIR/trust2.out"
fi

env -u SSL_CERT_FILE -u NODE_EXTRA_CA_CERTS timeout 60 "$MOAT" run --tls --ca-trust none --tls-ephemeral-ca "${UP[@]}" -- \
  sh -c 'echo "S=${SSL_CERT_FILE:-unset} N=${NODE_EXTRA_CA_CERTS:-unset}"; grep -c "moat interception CA" "$1" || true' probe "${SYS:-/dev/null}" \
  > "$T_DIR/trust3.out" 2> "$T_DIR/trust3.err"
check "none: no variables"                  grep -q "^S=unset N=unset" "$T_DIR/trust3.out"
check "none: system bundle untouched"       grep -qx 0 "$T_DIR/trust3.out"

# The persistent CA (the default) is the one the child trusts.
env -u NODE_EXTRA_CA_CERTS timeout 60 "$MOAT" run --tls "${UP[@]}" -- sh -c 'cat "$NODE_EXTRA_CA_CERTS"' > "$T_DIR/trust4.pem" 2> "$T_DIR/trust4.err"
check "persistent: the child gets moat ca show's CA" cmp -s "$T_DIR/trust4.pem" "$D/ca.crt"
# The first intercepting gateway creates the persistent CA (during setup, before the drop to
# nobody), with the same modes as `moat ca init`.
mv "$XDG_DATA_HOME" "$T_DIR/xdg.saved"
env -u NODE_EXTRA_CA_CERTS timeout 60 "$MOAT" run --tls "${UP[@]}" -- sh -c 'cat "$NODE_EXTRA_CA_CERTS"' > "$T_DIR/trust6.pem" 2> "$T_DIR/trust6.err"
check "first gateway: created the CA"       test -s "$D/ca.crt"
check "first gateway: the child trusts it"  cmp -s "$T_DIR/trust6.pem" "$D/ca.crt"
check "first gateway: directory 0700"       test "$(stat -c %a "$D")" = 700
check "first gateway: key 0600"             test "$(stat -c %a "$D/ca.key")" = 600
rm -rf "$XDG_DATA_HOME"; mv "$T_DIR/xdg.saved" "$XDG_DATA_HOME"
# Without --tls nothing is exported.
env -u NODE_EXTRA_CA_CERTS timeout 60 "$MOAT" run "${UP[@]}" -- sh -c 'echo "N=${NODE_EXTRA_CA_CERTS:-unset}"' > "$T_DIR/trust5.out" 2>&1
check "no --tls: nothing exported"          grep -q "^N=unset" "$T_DIR/trust5.out"

# moat killed with SIGKILL: its janitor still removes the files (the pipe closes with moat).
env -u NODE_EXTRA_CA_CERTS "$MOAT" run --tls --tls-ephemeral-ca "${UP[@]}" -- \
  sh -c 'dirname "$NODE_EXTRA_CA_CERTS" > "$1"; exec sleep 30' probe "$T_DIR/kill.dir" > /dev/null 2>&1 &
kpid=$!
wait_for 10 test -s "$T_DIR/kill.dir" || fail "the sandbox did not start"
kdir=$(cat "$T_DIR/kill.dir")
check "SIGKILL: the CA files exist while it runs" test -e "$kdir/ca-bundle.crt"
kill -9 "$kpid"; wait "$kpid" 2>/dev/null || true
check "SIGKILL: the CA files are removed anyway" wait_for 5 test ! -e "$kdir"
check "host system bundle untouched"        test "$SYS_SUM" = "$( [[ -n "$SYS" ]] && sha256sum < "$SYS" || echo none)"
check "no bind mount leaked to the host"    bash -c "! grep -q moat-ca /proc/self/mountinfo"
finish
