#!/bin/sh
# The boot benchmark's loop (guest/bench/run.sh), run where the VMMs run: on the host with
# hardware KVM, else inside the outer VM (guest/bench/l1-init). Plain POSIX sh (busybox).
#
# boot-loop.sh FROM TO BENCH MMIOLAB QEMU DIR MEM VCPUS TIMEOUT CMDLINE
# boots DIR/bzImage with DIR/initramfs.cpio under each VMM for repetitions FROM to TO
# (numbered from 1 over the whole benchmark), and a restore: mmiolab boots to the console
# text "mmiolab-boot-bench: tests" (printed by /init before its tests) and saves the VM
# (runner mmiolab-snapshot), then a new mmiolab process restores it (runner
# mmiolab-restore); the snapshot is deleted after its restore. Interleaved: odd
# repetitions mmiolab, QEMU, the snapshot and its restore; even ones the other way round.
# Each run through `BENCH boot-once`; one JSON sample per run on stdout, each run's console
# in DIR/logs/RUNNER-REP.log. Exit status 1 after the first run that fails or misses its
# line: the cold boots the init's and the first test's, the snapshot run the init's, the
# restore the first test's (its console and the VMM's stderr then go to stderr).
set -u
[ $# -eq 10 ] || { echo "usage: boot-loop.sh FROM TO BENCH MMIOLAB QEMU DIR MEM VCPUS TIMEOUT CMDLINE" >&2; exit 2; }
FROM=$1 TO=$2 BENCH=$3 MMIOLAB=$4 QEMU=$5 DIR=$6 MEM=$7 VCPUS=$8 TIMEOUT=$9 CMDLINE=${10}
MARKER="mmiolab-boot-bench: init"
mkdir -p "$DIR/logs"

boot() { # boot RUNNER REP
	case $1 in
	mmiolab) set -- "$1" "$2" "$MMIOLAB" run --config "$DIR/machine.toml" ;;
	mmiolab-snapshot) set -- "$1" "$2" "$MMIOLAB" run --config "$DIR/machine.toml" \
		--snapshot-after "console:mmiolab-boot-bench: tests" --snapshot-dir "$DIR/snapshot-$2" ;;
	mmiolab-restore) set -- "$1" "$2" "$MMIOLAB" run --config "$DIR/machine.toml" --restore "$DIR/snapshot-$2" ;;
	qemu) set -- "$1" "$2" "$QEMU" -M microvm -accel kvm -cpu host -m "$MEM" -smp "$VCPUS" \
		-nodefaults -no-user-config -display none -serial stdio -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$DIR/bzImage" -initrd "$DIR/initramfs.cpio" -append "$CMDLINE" ;;
	esac
	runner=$1 rep=$2
	shift 2
	"$BENCH" boot-once --runner "$runner" --rep "$rep" --marker "$MARKER" --timeout "$TIMEOUT" \
		--console "$DIR/logs/$runner-$rep.log" -- "$@"
}

rep=$FROM
while [ "$rep" -le "$TO" ]; do
	if [ $((rep % 2)) -eq 1 ]; then
		order="mmiolab qemu mmiolab-snapshot mmiolab-restore"
	else
		order="mmiolab-snapshot mmiolab-restore qemu mmiolab"
	fi
	rm -rf "$DIR/snapshot-$rep"
	for runner in $order; do
		sample=$(boot "$runner" "$rep") && echo "$sample"
		[ "$runner" != mmiolab-restore ] || rm -rf "$DIR/snapshot-$rep"
		case $runner:$sample in
		*:) ;;
		mmiolab-snapshot:*'"init_ms":null'*) ;;
		mmiolab-restore:*'"test_ms":null'*) ;;
		mmiolab:*'"init_ms":null'* | mmiolab:*'"test_ms":null'*) ;;
		qemu:*'"init_ms":null'* | qemu:*'"test_ms":null'*) ;;
		*) continue ;;
		esac
		echo "boot-loop: $runner, repetition $rep failed or missed its line; its console and stderr:" >&2
		cat "$DIR/logs/$runner-$rep.log" "$DIR/logs/$runner-$rep.stderr" >&2
		exit 1
	done
	rep=$((rep + 1))
done
