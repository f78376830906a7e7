#!/usr/bin/env bash
# Build the mmiolab test initramfs (uncompressed newc cpio).
set -euo pipefail

# Bump when this script changes in a way that changes the result.
BUILD_SH_VERSION=1

SCRIPT_NAME=initramfs/build.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$GUEST/lib/common.sh"

# busybox applets /init uses
APPLETS="sh mount rmmod cat dmesg reboot poweroff grep"

usage() {
	cat <<EOF
Usage: guest/initramfs/build.sh [--kernel-build DIR] [--out FILE]

Builds the test initramfs, an uncompressed newc cpio holding busybox (static),
/init (guest/initramfs/init), the test modules of guest/drivers built against
the kernel build dir (lib/modules/mmiolab/*.ko), and the static helpers of
guest/userspace (mmiolab-exit, mmiolab-insmod, devmem-test). Cached in
  \${MMIOLAB_CACHE:-\$HOME/.cache/mmiolab}/initramfs/<hash>/initramfs.cpio
keyed by the kernel build, the sources, busybox's and gcc's versions.

Prints progress on stderr and, on stdout, only the path of the cpio.

Options:
  --kernel-build DIR  kernel build dir (default: the one guest/kernel/build.sh
                      prints, building the kernel if needed)
  --out FILE          also copy the cpio to FILE
  -h, --help          this text
EOF
}

KBUILD=
OUT_FILE=
while [ $# -gt 0 ]; do
	case $1 in
	--kernel-build) [ $# -ge 2 ] || die "--kernel-build needs a directory"; KBUILD=$2; shift 2 ;;
	--out) [ $# -ge 2 ] || die "--out needs a file name"; OUT_FILE=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

need_pkgs busybox-static cpio gcc libc6-dev make util-linux
BUSYBOX=/bin/busybox
file_is_static() { ! LC_ALL=C ldd "$1" >/dev/null 2>&1; }
file_is_static "$BUSYBOX" || die "$BUSYBOX is not statically linked (is busybox-static installed?)"

if [ -z "$KBUILD" ]; then
	KBUILD=$("$GUEST/kernel/build.sh")
fi
KBUILD=$(cd "$KBUILD" 2>/dev/null && pwd) || die "kernel build dir '$KBUILD' does not exist"
if [ ! -f "$KBUILD/Module.symvers" ] || [ ! -f "$KBUILD/scripts/module.lds" ]; then
	die "$KBUILD is not a prepared kernel build dir (run guest/kernel/build.sh)"
fi

KEY=$({
	echo "build.sh $BUILD_SH_VERSION kernel $(basename "$KBUILD")"
	dpkg-query -W -f='busybox ${Version}\n' busybox-static
	gcc --version | head -n1
	for f in "$GUEST"/drivers/* "$GUEST"/userspace/*.c "$HERE"/init; do
		echo "$f"
		cat "$f"
	done
} | short_hash)
CACHE=$MMIOLAB_CACHE/initramfs/$KEY
CPIO=$CACHE/initramfs.cpio

copy_out() {
	[ -n "$OUT_FILE" ] || return 0
	mkdir -p "$(dirname "$OUT_FILE")"
	cp "$CPIO" "$OUT_FILE"
	stage "copied to $OUT_FILE"
}

lock_dir "$MMIOLAB_CACHE/initramfs"
if [ -f "$CPIO" ]; then
	stage "cached: $CPIO"
	copy_out
	echo "$CPIO"
	exit 0
fi

rm -rf "$CACHE"
mkdir -p "$CACHE/drivers" "$CACHE/bin"
LOG=$CACHE/build.log

stage "building modules against $KBUILD"
cp "$GUEST"/drivers/* "$CACHE/drivers/"
make -C "$KBUILD" M="$CACHE/drivers" KCFLAGS=-Werror modules >"$LOG" 2>&1 || {
	tail -n 30 "$LOG" >&2
	die "module build failed; log: $LOG"
}

stage "building static helpers"
for src in "$GUEST"/userspace/*.c; do
	prog=$(basename "$src" .c)
	gcc -static -Os -s -Wall -Wextra -Werror -o "$CACHE/bin/$prog" "$src" 2>>"$LOG" || {
		tail -n 30 "$LOG" >&2
		die "building $prog failed; log: $LOG"
	}
done

stage "assembling the root"
ROOT=$CACHE/root
mkdir -p "$ROOT"/{bin,dev,proc,sys,tmp,lib/modules/mmiolab}
cp "$BUSYBOX" "$ROOT/bin/busybox"
for a in $APPLETS; do
	ln -s busybox "$ROOT/bin/$a"
done
cp "$CACHE"/bin/* "$ROOT/bin/"
cp "$CACHE"/drivers/*.ko "$ROOT/lib/modules/mmiolab/"
install -m 0755 "$HERE/init" "$ROOT/init"

(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) >"$CPIO.tmp"
mv "$CPIO.tmp" "$CPIO"
stage "done: $(stat -c %s "$CPIO") byte cpio, modules: $(cd "$ROOT/lib/modules/mmiolab" && echo *.ko)"
copy_out
echo "$CPIO"
