#!/usr/bin/env bash
# boot-guest.sh --netdev SPEC --script T.sh [--env K=V]... [--file PATH]... [--timeout S] [--log FILE]
#                [--cache DIR]
#
# Boots the shared harness guest (../shared/guest: build-guest.sh's kernel + busybox initramfs,
# /init, /lib/harness.sh) with ONE virtio-net NIC on the QEMU backend SPEC (--file copies PATH
# to /test/ in the guest, like run-guest.sh's), e.g.
#   dgram,id=n0,local.type=unix,local.path=/tmp/vm.sock,remote.type=unix,remote.path=/tmp/moat.sock
# It is run-guest.sh with the backend left open (run-guest.sh is fixed to -netdev stream), and
# keeps its exit-status contract: the guest script's status from "@@HARNESS-EXIT rc=N"; 124 no
# marker before --timeout; 125 harness/QEMU error; 126 QEMU ended without a marker. TCG only (KVM
# does not boot Linux on this kind of machine, see the shared README).
set -uo pipefail
SHARED_GUEST="${MOAT_SHARED_DIR:?}/guest"
NETDEV="" SCRIPT="" TIMEOUT=180 LOG="" CACHE="${GUEST_CACHE:-/var/tmp/guest-harness-cache}" ENVS=() FILES=()
die() { echo "[boot-guest] error: $*" >&2; exit 125; }
while (($#)); do
  case "$1" in
    --netdev) NETDEV="$2"; shift 2 ;;
    --script) SCRIPT="$2"; shift 2 ;;
    --env) ENVS+=("$2"); shift 2 ;;
    --file) FILES+=("$2"); shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --log) LOG="$2"; shift 2 ;;
    --cache) CACHE="$2"; shift 2 ;;
    *) die "unknown argument: $1" ;;
  esac
done
[[ -n "$NETDEV" && -f "$SCRIPT" ]] || die "need --netdev and --script"
[[ "$NETDEV" == *id=n0* ]] || die "the netdev must have id=n0"
"$SHARED_GUEST/build-guest.sh" "$CACHE" >&2 || die "build-guest.sh failed"
WORK="$(mktemp -d /tmp/boot-guest.XXXXXX)"
QPID=""
trap '[[ -n "$QPID" ]] && kill "$QPID" 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/ovl/test"
install -m 0755 "$SCRIPT" "$WORK/ovl/test/test.sh"
for f in "${FILES[@]}"; do cp "$f" "$WORK/ovl/test/" || die "cannot copy $f"; done
: > "$WORK/ovl/test/env"
for kv in "${ENVS[@]}"; do
  [[ "$kv" == *=* && "${kv%%=*}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad --env '$kv'"
  printf "%s=%q\n" "${kv%%=*}" "${kv#*=}" >> "$WORK/ovl/test/env"
done
( cd "$WORK/ovl" && find . | LC_ALL=C sort | cpio -o -H newc --owner 0:0 --quiet ) | gzip -1 > "$WORK/ovl.cpio.gz"
cat "$CACHE/base.cpio.gz" "$WORK/ovl.cpio.gz" > "$WORK/initrd.gz"
GUEST_TIMEOUT=$((TIMEOUT - 30 > 10 ? TIMEOUT - 30 : 10))
[[ -n "$LOG" ]] || LOG="$WORK/serial.log"
: > "$LOG"
mkfifo "$WORK/out"
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -machine pc -m 256 -smp 1 \
  -nodefaults -no-user-config -display none -vga none -monitor none -no-reboot \
  -chardev stdio,id=ser0,signal=off -serial chardev:ser0 \
  -kernel "$CACHE/vmlinuz" -initrd "$WORK/initrd.gz" \
  -append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init harness.timeout=$GUEST_TIMEOUT harness.dhcp=1" \
  -netdev "$NETDEV" -device "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56" \
  < /dev/null > "$WORK/out" 2> "$WORK/qemu.err" &
QPID=$!
rc=""
while IFS= read -r line; do
  line="${line%$'\r'}"
  printf '%s\n' "$line" | tee -a "$LOG"
  case "$line" in "@@HARNESS-EXIT rc="*) rc="${line#@@HARNESS-EXIT rc=}"; rc="${rc%%[!0-9]*}" ;; esac
done < "$WORK/out"
wait "$QPID"; qrc=$?
QPID=""
[[ -s "$WORK/qemu.err" ]] && grep -v 'host doesn.t support requested feature' "$WORK/qemu.err" | sed 's/^/[boot-guest] qemu: /' >&2
[[ -n "$rc" ]] && exit "$rc"
[[ $qrc == 124 || $qrc == 137 ]] && { echo "[boot-guest] TIMEOUT after ${TIMEOUT}s" >&2; exit 124; }
echo "[boot-guest] QEMU ended without an exit marker (rc=$qrc)" >&2
[[ $qrc == 0 ]] && exit 126 || exit 125
