#!/usr/bin/env bash
# Boot the outer VM (L1) under QEMU TCG with nested SVM and return the VMM's exit status.
set -euo pipefail

SCRIPT_NAME=nested/run-l1.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$GUEST/lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/qemu.sh
. "$GUEST/lib/qemu.sh"

usage() {
	cat <<EOF
Usage: guest/nested/run-l1.sh --kernel BZIMAGE --initrd L1.cpio
                              [--append ARGS] [--timeout SECS] [--log FILE]

Runs
  qemu-system-x86_64 -accel tcg -cpu max -smp 1 -m 1024 -nographic -no-reboot
    -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel BZIMAGE -initrd L1.cpio
    -append "console=ttyS0 rdinit=/init panic=-1 tsc_early_khz=HOST_TSC_KHZ ARGS"
with the console on stdout. -cpu max gives the L1 kernel SVM, so its built-in
kvm_amd provides /dev/kvm ("SVM: kvm: Nested Paging enabled").
HOST_TSC_KHZ is measured here (nested/host-tsc-khz.c; the TCG guest's TSC runs
at the host's rate): L1's own TSC calibration against the emulated PIT fails
when the host is busy, and with tsc_khz = 0 its KVM never enters a guest.

The L1 /init writes the VMM's exit status N to port 0xf4; QEMU then exits
with (N << 1) | 1, which this script translates back: it exits with N
(3: no /dev/kvm in L1), 124 on timeout, 125 if no status was reported.

Options:
  --kernel BZIMAGE  L1 kernel (the guest kernel: it has KVM_AMD built in)
  --initrd FILE     L1 initramfs from guest/nested/build-l1.sh
  --append ARGS     extra kernel arguments; unknown KEY=VALUE ones become
                    environment variables of /init and the VMM
  --timeout SECS    give up after SECS seconds (default 600)
  --log FILE        console log (default: a file in the cache)
  -h, --help        this text
EOF
}

KERNEL='' INITRD='' EXTRA=''
TIMEOUT=600
LOG=$MMIOLAB_CACHE/run-l1.log
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) [ $# -ge 2 ] || die "--kernel needs a file"; KERNEL=$2; shift 2 ;;
	--initrd) [ $# -ge 2 ] || die "--initrd needs a file"; INITRD=$2; shift 2 ;;
	--append) [ $# -ge 2 ] || die "--append needs an argument"; EXTRA=$2; shift 2 ;;
	--timeout) [ $# -ge 2 ] || die "--timeout needs seconds"; TIMEOUT=$2; shift 2 ;;
	--log) [ $# -ge 2 ] || die "--log needs a file"; LOG=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
if [ -z "$KERNEL" ] || [ -z "$INITRD" ]; then
	die "--kernel and --initrd are required (see --help)"
fi
[ -f "$KERNEL" ] || die "$KERNEL does not exist"
[ -f "$INITRD" ] || die "$INITRD does not exist"
mkdir -p "$(dirname "$LOG")"

# host_tsc_khz: print the host's TSC rate in kHz, or nothing if it is not a
# constant TSC (the measuring program is compiled once into the cache)
host_tsc_khz() {
	local bin
	if [ "$(uname -m)" != x86_64 ] || ! grep -qw constant_tsc /proc/cpuinfo; then
		return 0
	fi
	need_pkgs gcc libc6-dev
	bin=$MMIOLAB_CACHE/host-tools/host-tsc-khz-$(short_hash <"$HERE/host-tsc-khz.c")
	if [ ! -x "$bin" ]; then
		mkdir -p "$(dirname "$bin")"
		gcc -O2 -Wall -Wextra -Werror -o "$bin.tmp" "$HERE/host-tsc-khz.c" ||
			die "building $HERE/host-tsc-khz.c failed"
		mv "$bin.tmp" "$bin"
	fi
	"$bin"
}

TSC_ARG=
TSC_KHZ=$(host_tsc_khz)
if [ -n "$TSC_KHZ" ]; then
	TSC_ARG="tsc_early_khz=$TSC_KHZ"
	stage "host TSC: $TSC_KHZ kHz, passed to L1 as $TSC_ARG"
else
	stage "warning: no constant host TSC; L1 calibrates its TSC itself (may fail on a busy host)"
fi

rc=0
run_qemu "$TIMEOUT" "$LOG" -accel tcg -cpu max -smp 1 -m 1024 \
	-kernel "$KERNEL" -initrd "$INITRD" \
	-append "console=ttyS0 rdinit=/init panic=-1 $TSC_ARG $EXTRA" || rc=$?
exit "$rc"
