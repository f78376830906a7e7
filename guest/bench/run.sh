#!/usr/bin/env bash
# The Linux boot benchmark (docs/performance.md, "Linux boot, side by side"): boots the
# guest kernel and a minimal initramfs under mmiolab and under QEMU microvm, interleaved,
# and writes one JSON sample per boot. `cargo xtask bench-linux` runs it and prints the table.
set -euo pipefail

SCRIPT_NAME=bench/run.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$(dirname "$HERE")
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$GUEST/lib/common.sh"

# What both VMMs give the guest.
MEM=256 VCPUS=1
CMDLINE="console=ttyS0 reboot=k panic=-1"

usage() {
	cat <<EOT
Usage: guest/bench/run.sh --vmm MMIOLAB --bench MMIOLAB_BENCH --out DIR
                          [--reps N] [--nested auto|always|never] [--timeout SECS]
                          [--kernel BZIMAGE]

Builds the guest kernel (guest/kernel/build.sh, cached) and a minimal initramfs (busybox
and guest/bench/init: one line, a KTAP report of one test, then the exit port), then boots
them N times (default 5) under mmiolab and under qemu-system-x86_64 -M microvm -accel kvm,
and restores them N times under mmiolab (a snapshot taken in each repetition at the
line /init prints before its tests), interleaved, each with $MEM MiB, $VCPUS vCPU and the command line "$CMDLINE", through
guest/bench/boot-loop.sh.
With hardware KVM they boot directly; else both run inside an outer VM (QEMU TCG with
nested SVM, as guest/run-machine.sh does; a fresh one per repetition, run again once if it
fails), QEMU and its firmware copied into it from the qemu-system-x86 package. DIR/samples.jsonl gets one JSON sample per boot (mmiolab-bench
boot-once), DIR/boot/logs/ the consoles (nested: copied out of the outer VMs' consoles,
DIR/l1-console-REP.log; DIR/retries lists outer VMs that had to be run again). --kernel boots
that bzImage instead of building one (it is also the outer VM's kernel when nested).
EOT
}

VMM='' BENCH='' OUT='' REPS=5 NESTED=auto TIMEOUT=120 KERNEL=
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || case $1 in -h | --help) ;; *) die "$1 needs an argument (see --help)" ;; esac
	case $1 in
	--vmm) VMM=$(realpath "$2"); shift 2 ;;
	--bench) BENCH=$(realpath "$2"); shift 2 ;;
	--out) OUT=$(realpath -m "$2"); shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--nested) NESTED=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--kernel) KERNEL=$(realpath "$2"); shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
[ -x "$VMM" ] && [ -x "$BENCH" ] && [ -n "$OUT" ] || die "--vmm, --bench and --out are required (see --help)"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps takes a positive number"
case $NESTED in auto | always | never) ;; *) die "--nested takes auto, always or never" ;; esac

need_pkgs busybox-static cpio gcc libc6-dev qemu-system-x86
QEMU=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 is not on PATH"
rm -rf "$OUT/boot" "$OUT/samples.jsonl" "$OUT/retries" "$OUT"/l1-console*.log
mkdir -p "$OUT/boot"

if [ -n "$KERNEL" ]; then
	[ -f "$KERNEL" ] || die "--kernel $KERNEL is not a file"
	cp "$KERNEL" "$OUT/boot/bzImage"
else
	stage "building the guest kernel (cached after the first build)"
	KBUILD=$("$GUEST/kernel/build.sh" --out "$OUT")
	cp "$KBUILD/arch/x86/boot/bzImage" "$OUT/boot/bzImage"
fi

stage "the benchmark's initramfs: busybox sh, mmiolab-exit, guest/bench/init"
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/bin"
cp /bin/busybox "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
gcc -static -Os -s -Wall -Wextra -Werror -o "$ROOT/bin/mmiolab-exit" "$GUEST/userspace/mmiolab-exit.c" ||
	die "building mmiolab-exit failed"
install -m 0755 "$HERE/init" "$ROOT/init"
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) \
	>"$OUT/boot/initramfs.cpio"

cat >"$OUT/boot/machine.toml" <<EOT
# Written by guest/bench/run.sh: the boot benchmark's machine, only the built-in devices.
[machine]
memory_mib = $MEM
vcpus = $VCPUS
kernel = "bzImage"
initrd = "initramfs.cpio"
cmdline = "$CMDLINE"
EOT

mode=$NESTED reason=''
if [ "$mode" = auto ]; then
	if reason=$(direct_reason); then mode=never; else mode=always; fi
fi
if [ "$mode" = never ]; then
	stage "booting directly (hardware KVM): $REPS repetitions"
	"$HERE/boot-loop.sh" 1 "$REPS" "$BENCH" "$VMM" "$QEMU" "$OUT/boot" "$MEM" "$VCPUS" "$TIMEOUT" "$CMDLINE" \
		>"$OUT/samples.jsonl"
	echo "direct" >"$OUT/mode"
	exit 0
fi

stage "running nested: ${reason:-requested with --nested always}; both VMMs inside an outer VM (QEMU TCG -cpu max), a fresh one per repetition"
echo "nested: ${reason:-requested with --nested always}" >"$OUT/mode"
printf '%s\n' "$CMDLINE" >"$OUT/boot/cmdline"
# QEMU finds its firmware relative to its binary (BIN/../share/qemu): the outer VM gets it
# at /usr/bin with microvm's firmware (qboot) and the option ROM that loads -kernel.
FIRMWARE=$(dirname "$(realpath "$QEMU")")/../share/qemu
[ -d "$FIRMWARE" ] || FIRMWARE=/usr/share/qemu
QEMU_FILES=()
for f in bios-microvm.bin linuxboot_dma.bin; do
	[ -f "$FIRMWARE/$f" ] || die "QEMU's firmware $f is not in $FIRMWARE, where qemu-system-x86 puts it"
	QEMU_FILES+=(--file "$FIRMWARE/$f:/usr/share/qemu/$f")
done
"$GUEST/nested/build-l1.sh" --vmm "$VMM" --kernel "$OUT/boot/bzImage" --initrd "$OUT/boot/initramfs.cpio" \
	--config "$OUT/boot/machine.toml" --out "$OUT/l1.cpio" --init "$HERE/l1-init" --applets "mkdir rm" \
	--bin "$QEMU:/usr/bin/qemu-system-x86_64" --bin "$BENCH:/bin/mmiolab-bench" "${QEMU_FILES[@]}" \
	--file "$HERE/boot-loop.sh:/bin/boot-loop.sh" --file "$OUT/boot/cmdline:/bench/cmdline"
# One outer VM per repetition, tried twice: nested KVM under TCG here sometimes freezes the
# whole outer VM mid-boot (seen about once in fifteen inner boots, at any of them), and a
# fresh outer VM is cheaper than losing the run.
ATTEMPTS=2
: >"$OUT/samples.jsonl"
mkdir -p "$OUT/boot/logs"
for rep in $(seq 1 "$REPS"); do
	for attempt in $(seq 1 "$ATTEMPTS"); do
		log=$OUT/l1-console-$rep.log
		set +e
		"$GUEST/nested/run-l1.sh" --kernel "$OUT/boot/bzImage" --initrd "$OUT/l1.cpio" \
			--timeout $((TIMEOUT * 4 + 90)) --log "$log" \
			--append "MMIOLAB_BENCH_REP=$rep MMIOLAB_BENCH_MEM=$MEM MMIOLAB_BENCH_VCPUS=$VCPUS MMIOLAB_BENCH_TIMEOUT=$TIMEOUT" >&2
		rc=$?
		set -e
		[ "$rc" -ne 0 ] || break
		[ "$attempt" -lt "$ATTEMPTS" ] || die "repetition $rep: the outer VM failed $ATTEMPTS times (status $rc): see $log"
		stage "repetition $rep: the outer VM failed (status $rc, console in $log); once more"
		echo "repetition $rep: the outer VM failed once (status $rc) and was run again" >>"$OUT/retries"
	done
	tr -d '\r' <"$log" | sed -n '/^mmiolab-bench-l1: begin samples$/,/^mmiolab-bench-l1: end samples$/p' |
		grep '^{' >>"$OUT/samples.jsonl" || true
	tr -d '\r' <"$log" | awk -v dir="$OUT/boot/logs" '
		/^mmiolab-bench-l1: end log$/ { file = ""; next }
		/^mmiolab-bench-l1: begin log [A-Za-z0-9.-]+$/ { file = dir "/" $4; printf "" > file; next }
		file != "" { print > file }'
done
