#!/usr/bin/env bash
# Boot the guest kernel + test initramfs under plain QEMU with dts/qemu-smoke.dts.
set -euo pipefail

SCRIPT_NAME=qemu-smoke.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=lib/qemu.sh
. "$HERE/lib/qemu.sh"

usage() {
	cat <<EOF
Usage: guest/qemu-smoke.sh [--panic-test] [--append ARGS] [--timeout SECS] [--log FILE]

Builds (or takes from the cache) the kernel and the test initramfs, compiles
guest/dts/qemu-smoke.dts and boots them under qemu-system-x86_64 -accel tcg
with -dtb, QEMU's ISA pvpanic and the isa-debug-exit device at 0xf4.
QEMU has no regfiles, so the register checks fail and the expected guest
status is 1; what this checks is the boot, the DT binding, the resources in
/proc/iomem and /proc/ioports, the KTAP output and the exit path.

Exits with the status the guest wrote to port 0xf4 (see guest/lib/qemu.sh),
124 on timeout, 125 if the guest reported none.

Options:
  --panic-test    boot with rdinit=/bin/mmiolab-exit (no argument: it exits,
                  the kernel panics "Attempted to kill init!"), to check that
                  pvpanic ends QEMU with a failure (expected result: 125 with
                  "the guest kernel panicked")
  --append ARGS   extra kernel command line arguments
  --timeout SECS  give up after SECS seconds (default 300)
  --log FILE      console log (default: a file in the cache)
  -h, --help      this text
EOF
}

RDINIT=/init
EXTRA=
TIMEOUT=300
LOG=$MMIOLAB_CACHE/qemu-smoke.log
while [ $# -gt 0 ]; do
	case $1 in
	--panic-test) RDINIT=/bin/mmiolab-exit; shift ;;
	--append) [ $# -ge 2 ] || die "--append needs an argument"; EXTRA=$2; shift 2 ;;
	--timeout) [ $# -ge 2 ] || die "--timeout needs seconds"; TIMEOUT=$2; shift 2 ;;
	--log) [ $# -ge 2 ] || die "--log needs a file"; LOG=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

need_pkgs device-tree-compiler
KBUILD=$("$HERE/kernel/build.sh")
CPIO=$("$HERE/initramfs/build.sh" --kernel-build "$KBUILD")
mkdir -p "$MMIOLAB_CACHE" "$(dirname "$LOG")"
DTB=$MMIOLAB_CACHE/qemu-smoke.dtb
dtc -q -I dts -O dtb -o "$DTB" "$HERE/dts/qemu-smoke.dts"

rc=0
run_qemu "$TIMEOUT" "$LOG" -accel tcg -cpu max -smp 1 -m 256 \
	-kernel "$KBUILD/arch/x86/boot/bzImage" -initrd "$CPIO" -dtb "$DTB" \
	-device pvpanic -action panic=exit-failure -parallel none \
	-append "console=ttyS0 rdinit=$RDINIT panic=-1 $EXTRA" || rc=$?
exit "$rc"
