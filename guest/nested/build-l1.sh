#!/usr/bin/env bash
# Build the initramfs of the outer VM (L1) that runs the mmiolab VMM under nested KVM.
set -euo pipefail

SCRIPT_NAME=nested/build-l1.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$GUEST/lib/common.sh"

# busybox applets l1-init uses
APPLETS="sh mount reboot cat"

usage() {
	cat <<EOF
Usage: guest/nested/build-l1.sh --vmm BIN --kernel BZIMAGE --initrd L2_CPIO
                                --config MACHINE_TOML [--files DIR] --out L1.cpio
                                [--init FILE] [--applets LIST] [--bin SRC:DST]...
                                [--file SRC:DST]...

Makes the uncompressed newc initramfs of the L1 VM, for hosts whose /dev/kvm
cannot boot Linux: busybox (static), mmiolab-exit, /init (nested/l1-init),
and under /mmiolab:
  mmiolab           the VMM binary (BIN), plus its shared libraries and
                    dynamic loader at their ldd paths
  bzImage           the L2 kernel
  initramfs.cpio    the L2 initramfs
  machine.toml      the machine config (its paths should point at the files
                    above; the VMM runs with /mmiolab as working directory)
  files/            the contents of --files DIR (device descriptions the
                    machine file names as files/NAME)
The L1 /init runs "/mmiolab/mmiolab run --config /mmiolab/machine.toml" and
writes its exit status to port 0xf4 (3 if /dev/kvm is missing). Boot it with
guest/nested/run-l1.sh.

Options:
  --vmm BIN --kernel BZIMAGE --initrd L2_CPIO --config MACHINE_TOML --out FILE
  --files DIR  copied to /mmiolab/files
  --init FILE  another /init (the boot benchmark's, guest/bench/l1-init)
  --applets LIST  more busybox applets, space-separated
  --bin SRC:DST   another program, with its shared libraries (repeatable)
  --file SRC:DST  another file, symbolic links followed (repeatable)
  -h, --help   this text
EOF
}

VMM='' KERNEL='' INITRD='' CONFIG='' OUT='' FILES='' INIT=$HERE/l1-init BINS=() EXTRA_FILES=()
while [ $# -gt 0 ]; do
	case $1 in
	--vmm | --kernel | --initrd | --config | --out | --files | --init | --applets | --bin | --file)
		[ $# -ge 2 ] || die "$1 needs an argument"
		case $1 in
		--vmm) VMM=$2 ;;
		--kernel) KERNEL=$2 ;;
		--initrd) INITRD=$2 ;;
		--config) CONFIG=$2 ;;
		--out) OUT=$2 ;;
		--files) FILES=$2 ;;
		--init) INIT=$2 ;;
		--applets) APPLETS="$APPLETS $2" ;;
		--bin) BINS+=("$2") ;;
		--file) EXTRA_FILES+=("$2") ;;
		esac
		shift 2
		;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
for opt in VMM KERNEL INITRD CONFIG OUT; do
	[ -n "${!opt}" ] || die "--$(tr '[:upper:]' '[:lower:]' <<<"$opt") is required (see --help)"
done
if [ ! -f "$VMM" ] || [ ! -x "$VMM" ]; then
	die "--vmm $VMM is not an executable file"
fi
for f in "$KERNEL" "$INITRD" "$CONFIG" "$INIT"; do
	[ -f "$f" ] || die "$f does not exist"
done

need_pkgs busybox-static cpio gcc libc6-dev libc-bin

ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT"/{bin,dev,proc,sys,tmp,mmiolab}

stage "busybox, mmiolab-exit, /init"
cp /bin/busybox "$ROOT/bin/busybox"
for a in $APPLETS; do
	ln -s busybox "$ROOT/bin/$a"
done
gcc -static -Os -s -Wall -Wextra -Werror -o "$ROOT/bin/mmiolab-exit" "$GUEST/userspace/mmiolab-exit.c" ||
	die "building mmiolab-exit failed"
install -m 0755 "$INIT" "$ROOT/init"

# add_program SRC DST: install SRC at DST with its shared libraries and dynamic loader at
# their ldd paths
add_program() {
	local libs
	stage "$1 and its shared libraries"
	mkdir -p "$ROOT$(dirname "$2")"
	install -m 0755 "$1" "$ROOT$2"
	# ldd prints "name => /path (addr)" per library and "/path (addr)" for the
	# loader; a static binary or a script makes it fail ("not a dynamic executable").
	if libs=$(LC_ALL=C ldd "$1" 2>/dev/null); then
		grep -o '/[^ ]*' <<<"$libs" | sort -u | while read -r lib; do
			mkdir -p "$ROOT$(dirname "$lib")"
			cp -L "$lib" "$ROOT$lib"
			stage "  $lib"
		done
	else
		stage "  (not a dynamic executable: no libraries needed)"
	fi
}

add_program "$VMM" /mmiolab/mmiolab
for spec in "${BINS[@]}"; do
	[[ $spec = *:/* ]] || die "--bin takes SRC:DST with an absolute DST, not '$spec'"
	add_program "${spec%%:/*}" "/${spec#*:/}"
done
for spec in "${EXTRA_FILES[@]}"; do
	[[ $spec = *:/* ]] || die "--file takes SRC:DST with an absolute DST, not '$spec'"
	dst=/${spec#*:/}
	mkdir -p "$ROOT$(dirname "$dst")"
	cp -L "${spec%%:/*}" "$ROOT$dst"
done

cp "$KERNEL" "$ROOT/mmiolab/bzImage"
cp "$INITRD" "$ROOT/mmiolab/initramfs.cpio"
cp "$CONFIG" "$ROOT/mmiolab/machine.toml"
if [ -n "$FILES" ]; then
	[ -d "$FILES" ] || die "--files $FILES is not a directory"
	cp -r "$FILES" "$ROOT/mmiolab/files"
fi

mkdir -p "$(dirname "$OUT")"
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
stage "done: $OUT ($(stat -c %s "$OUT") bytes)"
