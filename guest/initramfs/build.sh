#!/usr/bin/env bash
# Build the mmiolab test initramfs (uncompressed newc cpio).
set -euo pipefail

# Bump when this script changes in a way that changes the result.
BUILD_SH_VERSION=3

SCRIPT_NAME=initramfs/build.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$GUEST/lib/common.sh"

# the kernel's own modules the script tests load (built because config.fragment has =m)
KERNEL_MODULES="drivers/parport/parport.ko drivers/parport/parport_pc.ko"

# busybox applets /init and the script tests use
APPLETS="sh mount rmmod cat dmesg reboot poweroff grep readlink basename"

usage() {
	cat <<EOF
Usage: guest/initramfs/build.sh [--kernel-build DIR] [--out FILE]
                                 [--test SCRIPT]... [--file SRC:DST]...

Builds the test initramfs, an uncompressed newc cpio holding busybox (static),
/init (guest/initramfs/init), the test modules of guest/drivers built against
the kernel build dir (lib/modules/mmiolab/*.ko; KUnit test modules, those with
a .kunit_test_suites section, in lib/modules/kunit/, which /init loads first:
put yours there with --file), the kernel's own modules the
script tests load (lib/modules/kernel/: parport, parport_pc), the static
helpers of guest/userspace (mmiolab-exit, mmiolab-insmod, devmem-test,
gpio-test, serial-loopback) and the script tests (/tests/*.sh: those of
guest/initramfs/tests, then yours). Cached in
  \${MMIOLAB_CACHE:-\$HOME/.cache/mmiolab}/initramfs/<hash>/initramfs.cpio
keyed by the kernel build, the sources, your files, busybox's and gcc's versions.

Prints progress on stderr and, on stdout, only the path of the cpio.

Options:
  --kernel-build DIR  kernel build dir (default: the one guest/kernel/build.sh
                      prints, building the kernel if needed)
  --out FILE          also copy the cpio to FILE
  --test SCRIPT       add a script test: after the module tests /init runs
                      every /tests/*.sh (the bundled ones and yours, in name
                      order) with busybox sh, each as KTAP test NAME (the file
                      name without .sh); exit status 0 passes, every line it
                      prints is a diagnostic (repeatable)
  --file SRC:DST      copy the file SRC to DST (an absolute path) in the
                      initramfs, e.g. your module: mydrv.ko:/lib/modules/user/mydrv.ko
                      (repeatable; busybox applets: $APPLETS)
  -h, --help          this text
EOF
}

KBUILD=
OUT_FILE=
TESTS=("$HERE"/tests/*.sh)
EXTRA_SRCS=()
EXTRA_DSTS=()
while [ $# -gt 0 ]; do
	case $1 in
	--kernel-build) [ $# -ge 2 ] || die "--kernel-build needs a directory"; KBUILD=$2; shift 2 ;;
	--out) [ $# -ge 2 ] || die "--out needs a file name"; OUT_FILE=$2; shift 2 ;;
	--test)
		[ $# -ge 2 ] || die "--test needs a script"
		[ -f "$2" ] || die "--test $2: not a regular file"
		case $2 in *.sh) ;; *) die "--test $2: a script test's name ends in .sh (its KTAP name is the rest)" ;; esac
		for t in "${TESTS[@]}"; do
			[ "$(basename "$t")" != "$(basename "$2")" ] ||
				die "--test $2: a test named $(basename "$2" .sh) is already in the initramfs ($t)"
		done
		TESTS+=("$(realpath "$2")")
		shift 2
		;;
	--file)
		[ $# -ge 2 ] || die "--file needs SRC:DST"
		case $2 in *:/*) ;; *) die "--file $2: want SRC:DST with an absolute DST" ;; esac
		src=${2%:*} dst=${2##*:}
		[ -f "$src" ] || die "--file $2: $src is not a regular file"
		case $dst/ in */../* | */./* | *//*) die "--file $2: DST must be a plain absolute path" ;; esac
		case $dst in /init | /bin/* | /tests/* | /lib/mmiolab/* | /lib/modules/mmiolab/* | /lib/modules/kernel/*)
			die "--file $2: $dst belongs to the bundled initramfs; choose another path" ;;
		esac
		EXTRA_SRCS+=("$(realpath "$src")")
		EXTRA_DSTS+=("$dst")
		shift 2
		;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

need_pkgs busybox-static cpio gcc libc6-dev make util-linux binutils
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
	for f in "$GUEST"/drivers/* "$GUEST"/agent/* "$GUEST"/userspace/*.c "$HERE"/init "$HERE"/ktap.sh "${TESTS[@]}" "${EXTRA_SRCS[@]}"; do
		echo "$f"
		cat "$f"
	done
	printf '%s\n' "${EXTRA_DSTS[@]}"
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
mkdir -p "$CACHE/drivers" "$CACHE/agent" "$CACHE/bin"
LOG=$CACHE/build.log

stage "building modules against $KBUILD"
cp "$GUEST"/drivers/* "$CACHE/drivers/"
make -C "$KBUILD" M="$CACHE/drivers" KCFLAGS=-Werror modules >"$LOG" 2>&1 || {
	tail -n 30 "$LOG" >&2
	die "module build failed; log: $LOG"
}
stage "building the checker's guest agent (guest/agent)"
cp "$GUEST"/agent/* "$CACHE/agent/"
make -C "$KBUILD" M="$CACHE/agent" KCFLAGS=-Werror modules >>"$LOG" 2>&1 || {
	tail -n 30 "$LOG" >&2
	die "agent build failed (a kernel without CONFIG_KPROBES?); log: $LOG"
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
mkdir -p "$ROOT/lib/modules/kunit"
for ko in "$CACHE"/drivers/*.ko "$CACHE"/agent/*.ko; do
	# KUnit test modules (a .kunit_test_suites section) go where /init loads them first
	if readelf -SW "$ko" | grep -qF .kunit_test_suites; then
		cp "$ko" "$ROOT/lib/modules/kunit/"
	else
		cp "$ko" "$ROOT/lib/modules/mmiolab/"
	fi
done
mkdir -p "$ROOT/lib/modules/kernel" "$ROOT/tests"
for m in $KERNEL_MODULES; do
	[ -f "$KBUILD/$m" ] || die "$KBUILD/$m is missing: was the kernel built with guest/kernel/config.fragment?"
	cp "$KBUILD/$m" "$ROOT/lib/modules/kernel/"
done
for t in "${TESTS[@]}"; do
	install -m 0755 "$t" "$ROOT/tests/$(basename "$t")"
done
for i in "${!EXTRA_SRCS[@]}"; do
	install -D -m 0644 "${EXTRA_SRCS[$i]}" "$ROOT${EXTRA_DSTS[$i]}"
done
install -m 0755 "$HERE/init" "$ROOT/init"
install -D -m 0644 "$HERE/ktap.sh" "$ROOT/lib/mmiolab/ktap.sh"

(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) >"$CPIO.tmp"
mv "$CPIO.tmp" "$CPIO"
stage "done: $(stat -c %s "$CPIO") byte cpio, modules: $(cd "$ROOT/lib/modules/mmiolab" && echo *.ko)"
copy_out
echo "$CPIO"
