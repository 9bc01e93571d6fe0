#!/usr/bin/env bash
# moat-it-timeout: 300
# Installed like a system tool (issue 13): `cmake --install` into a scratch prefix, then
#   * an out-of-tree C program finds libmoat with pkg-config and with find_package(moat)
#     (shared and static), builds and runs (moat_abi_version() = 1);
#   * man moat / man moat.toml render without warnings and list settings from the schema;
#   * the bash completion completes `moat run --tl` from the binary's own --help;
#   * the systemd template unit passes systemd-analyze verify (when available) and names the
#     installed binary.
source "$(dirname "$0")/lib.sh" "$@"
BUILD="$(cd "$(dirname "$MOAT")/../.." && pwd)"
[[ -f "$BUILD/CMakeCache.txt" ]] || { echo "SKIP: $MOAT is not in a CMake build tree"; exit 77; }
if grep -q "^MOAT_SANITIZE:BOOL=ON" "$BUILD/CMakeCache.txt"; then
  # A sanitizer libmoat needs the sanitizer runtime in every program that links it.
  echo "SKIP: sanitizer build (the installed library needs the ASan runtime)"; exit 77
fi
P="$T_DIR/prefix"
check "cmake --install into a scratch prefix" cmake --install "$BUILD" --prefix "$P"
for f in bin/moat include/moat/moat.h share/man/man1/moat.1 share/man/man5/moat.toml.5 \
         share/bash-completion/completions/moat share/zsh/vendor-completions/_moat lib/systemd/system/moat@.service; do
  check "installed $f" test -s "$P/$f"
done
libdir="$(dirname "$(find "$P" -name libmoat.so.1 | head -n 1)")"
check "libmoat.so.1 and libmoat.a installed" test -s "$libdir/libmoat.so.1" -a -s "$libdir/libmoat.a"
check "the installed moat runs" "$P/bin/moat" --version

mkdir -p "$T_DIR/app"
cat > "$T_DIR/app/main.c" <<'C'
#include <moat/moat.h>
#include <stdio.h>
int main(void) {
  unsigned v = moat_abi_version();
  printf("abi %u\n", v);
  return v == 1 ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$libdir/pkgconfig"
check "pkg-config knows moat" pkg-config --exists moat
# shellcheck disable=SC2046
check "pkg-config: build the program" cc -o "$T_DIR/app/pc" "$T_DIR/app/main.c" $(pkg-config --cflags --libs moat)
check "pkg-config: it runs against the installed library" env LD_LIBRARY_PATH="$libdir" "$T_DIR/app/pc"
# shellcheck disable=SC2046
check "pkg-config --static: link libmoat.a" c++ -o "$T_DIR/app/pc-static" "$T_DIR/app/main.c" -x none \
  $(pkg-config --cflags moat) "$libdir/libmoat.a" $(pkg-config --static --libs-only-l moat | sed 's/-lmoat//')
check "pkg-config --static: it runs" "$T_DIR/app/pc-static"

cat > "$T_DIR/app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(moat_user C CXX)
find_package(moat 0.1 REQUIRED)
add_executable(user_shared main.c)
target_link_libraries(user_shared PRIVATE moat::moat)
add_executable(user_static main.c)
target_link_libraries(user_static PRIVATE moat::moat_static)
set_target_properties(user_static PROPERTIES LINKER_LANGUAGE CXX)
CM
check "find_package(moat): configure" cmake -S "$T_DIR/app" -B "$T_DIR/app/build" -DCMAKE_PREFIX_PATH="$P" -G Ninja
check "find_package(moat): build shared and static" cmake --build "$T_DIR/app/build"
check "find_package(moat): shared runs" "$T_DIR/app/build/user_shared"
check "find_package(moat): static runs" "$T_DIR/app/build/user_static"

for page in "$P/share/man/man1/moat.1" "$P/share/man/man5/moat.toml.5"; do
  MANWIDTH=100 man -l "$page" > "$T_DIR/page.txt" 2> "$T_DIR/page.err" || true
  check "$(basename "$page") renders without warnings" test ! -s "$T_DIR/page.err" -a -s "$T_DIR/page.txt"
done
MANWIDTH=200 man -l "$P/share/man/man1/moat.1" 2>/dev/null > "$T_DIR/moat.1.txt"
MANWIDTH=200 man -l "$P/share/man/man5/moat.toml.5" 2>/dev/null > "$T_DIR/moat.toml.5.txt"
check "moat(1) has run's --memory-budget and serve's --qemu" \
  bash -c "grep -q -- '--memory-budget' '$T_DIR/moat.1.txt' && grep -q -- '--qemu' '$T_DIR/moat.1.txt'"
check "moat.toml(5) has limits.memory_budget with its default" grep -q "limits.memory_budget" "$T_DIR/moat.toml.5.txt"

cat > "$T_DIR/comp.sh" <<COMP
source "$P/share/bash-completion/completions/moat"
PATH="$P/bin:\$PATH"
COMP_WORDS=(moat run --memory-bud); COMP_CWORD=2; _moat; echo "run: \${COMPREPLY[*]}"
COMP_WORDS=(moat serve --qe); COMP_CWORD=2; _moat; echo "serve: \${COMPREPLY[*]}"
COMP_WORDS=(moat pol); COMP_CWORD=1; _moat; echo "sub: \${COMPREPLY[*]}"
COMP_WORDS=(moat policy ex); COMP_CWORD=2; _moat; echo "policy: \${COMPREPLY[*]}"
COMP
bash "$T_DIR/comp.sh" > "$T_DIR/comp.out" 2>&1 || true
cat "$T_DIR/comp.out"
check "bash completion: run --memory-bud -> --memory-budget" grep -qx "run: --memory-budget" "$T_DIR/comp.out"
check "bash completion: serve --qe -> --qemu" grep -qx "serve: --qemu" "$T_DIR/comp.out"
check "bash completion: subcommands" grep -qx "sub: policy" "$T_DIR/comp.out"
check "bash completion: policy ex -> explain" grep -qx "policy: explain" "$T_DIR/comp.out"
if command -v zsh > /dev/null; then
  check "zsh completion parses" zsh -n "$P/share/zsh/vendor-completions/_moat"
fi
unit="$P/lib/systemd/system/moat@.service"
check "the unit runs the installed binary" grep -q "^ExecStart=/.*/moat attach --netns /run/netns/%i" "$unit"
check "the unit is Type=notify" grep -qx "Type=notify" "$unit"
finish
