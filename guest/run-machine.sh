#!/usr/bin/env bash
# Builds what is missing (kernel, test initramfs) and runs a Linux machine under mmiolab:
# directly when the host's KVM can boot Linux, else inside an outer VM (QEMU TCG, -cpu max,
# nested SVM). The console goes to stdout and to --log; the exit status is the guest's, as
# `mmiolab run` reports it.
set -euo pipefail

SCRIPT_NAME=run-machine.sh
GUEST=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$GUEST/lib/common.sh"

usage() {
	cat <<EOT
Usage: guest/run-machine.sh --vmm BIN [--config MACHINE_TOML] [--nested auto|always|never]
                            [--log FILE] [--out DIR] [--timeout SECS]
                            [--trace FILE [--trace-filter DEVICE[.REGISTER]]...]
                            [--check-json FILE | --snapshot-at TEXT [--retries N]] [--fragment FILE]...
                            [--initramfs-test SCRIPT]... [--initramfs-file SRC:DST]...
                            [--kernel FILE --initrd FILE]

  --vmm BIN       the mmiolab binary
  --config FILE   machine description (default: guest/machines/default.toml); its
                  kernel and initrd must be target/guest/bzImage and initramfs.cpio
  --nested MODE   auto (default): boot directly when /dev/kvm is hardware KVM (the CPU
                  has vmx or svm and the host is not the software kvm_pvm), else nested
  --log FILE      console log (default: DIR/console.log)
  --out DIR       where the kernel, initramfs and logs go (default: target/guest)
  --timeout SECS  give up after this long (default 600)
  --trace FILE    write mmiolab's trace (JSON lines) to FILE; nested, the outer VM prints
                  it on its console between "mmiolab-l1: begin trace" and "mmiolab-l1: end
                  trace" once the VMM has exited, and it is copied from there into FILE
  --trace-filter SPEC  keep only these trace lines (repeatable; mmiolab run --help)
  --snapshot-at TEXT   boot to the first console line holding TEXT (no spaces), save the
                  VM there (mmiolab run --snapshot-after console:TEXT), and run the rest
                  from a restore of that snapshot (--restore; docs/snapshot.md); not with
                  --check-json; each restore starts with a line "mmiolab: restoring the
                  snapshot taken at console:TEXT (attempt K of M)" on the console
  --retries N     with --snapshot-at: when the restored run ends with a non-zero status,
                  restore the same snapshot again, up to N more times (no new boot);
                  the exit status is the last attempt's
  --check-json FILE    run the checker (mmiolab run --check, with the guest agent's port;
                  docs/checker.md) and write its findings report to FILE; nested, the
                  outer VM prints it between "mmiolab-l1: begin findings" and "mmiolab-l1:
                  end findings", and it is copied from there into FILE
  --fragment FILE       kernel options beyond guest/kernel/config.fragment (repeatable;
                        guest/kernel/build.sh --help)
  --initramfs-test SCRIPT   a script test for the initramfs (repeatable;
                        guest/initramfs/build.sh --help, --test)
  --initramfs-file SRC:DST  a file for the initramfs, e.g. your module (repeatable;
                        guest/initramfs/build.sh --help, --file)
  --kernel FILE --initrd FILE  boot these instead of building the bundled ones (nested:
                        the outer VM gets them, and the machine file's kernel and initrd
                        lines name them; \`mmiolab test --nested\` passes them)
Exit status: the guest's (see mmiolab run --help); 124 on a timeout of the outer VM.
Environment: MMIOLAB_CONSOLE_TIMESTAMPS=1 prefixes console lines with the time since
mmiolab started (passed into the outer VM too).
EOT
}

VMM='' CONFIG=$GUEST/machines/default.toml NESTED=auto LOG='' OUT=$(dirname "$GUEST")/target/guest TIMEOUT=600
TRACE='' FILTERS=() KERNEL_ARGS=() INITRAMFS_ARGS=() FINDINGS= SNAPSHOT_AT= RETRIES=0 KERNEL='' INITRD=''
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || case $1 in -h | --help) ;; *) die "$1 needs an argument (see --help)" ;; esac
	case $1 in
	--vmm) VMM=$(realpath "$2"); shift 2 ;;
	--config) CONFIG=$(realpath "$2"); shift 2 ;;
	--nested) NESTED=$2; shift 2 ;;
	--log) LOG=$(realpath -m "$2"); shift 2 ;;
	--out) OUT=$(realpath -m "$2"); shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--trace) TRACE=$(realpath -m "$2"); shift 2 ;;
	--check-json) FINDINGS=$(realpath -m "$2"); shift 2 ;;
	--snapshot-at)
		case $2 in *' '* | '') die "--snapshot-at takes a console text without spaces" ;; esac
		SNAPSHOT_AT=$2
		shift 2
		;;
	--retries)
		case $2 in '' | *[!0-9]*) die "--retries takes a number" ;; esac
		RETRIES=$2
		shift 2
		;;
	--fragment) KERNEL_ARGS+=(--fragment "$2"); shift 2 ;;
	--initramfs-test) INITRAMFS_ARGS+=(--test "$2"); shift 2 ;;
	--initramfs-file) INITRAMFS_ARGS+=(--file "$2"); shift 2 ;;
	--kernel) KERNEL=$(realpath -m "$2"); shift 2 ;;
	--initrd) INITRD=$(realpath -m "$2"); shift 2 ;;
	--trace-filter)
		case $2 in *,* | *' '* | '') die "--trace-filter takes one DEVICE[.REGISTER]" ;; esac
		FILTERS+=("$2")
		shift 2
		;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
if [ -z "$VMM" ] || [ ! -x "$VMM" ]; then
	die "--vmm BIN is required and must be executable (see --help)"
fi
case $NESTED in auto | always | never) ;; *) die "--nested takes auto, always or never" ;; esac
if [ -n "$SNAPSHOT_AT" ] && [ -n "$FINDINGS" ]; then
	die "--snapshot-at does not combine with --check-json (docs/snapshot.md)"
fi
if [ "$RETRIES" -gt 0 ] && [ -z "$SNAPSHOT_AT" ]; then
	die "--retries restores a snapshot: it needs --snapshot-at"
fi
if [ -n "$KERNEL$INITRD" ] && { [ ! -f "$KERNEL" ] || [ ! -f "$INITRD" ]; }; then
	die "--kernel and --initrd go together, and must name files"
fi
if [ -n "$KERNEL" ] && [ "${#KERNEL_ARGS[@]}${#INITRAMFS_ARGS[@]}" != 00 ]; then
	die "--kernel/--initrd boot prebuilt files: --fragment and --initramfs-* do not apply"
fi
if [ -z "$TRACE" ] && [ "${#FILTERS[@]}" -gt 0 ]; then
	die "--trace-filter needs --trace FILE"
fi
mkdir -p "$OUT"
LOG=${LOG:-$OUT/console.log}
[ -z "$TRACE" ] || mkdir -p "$(dirname "$TRACE")"
if [ -n "$FINDINGS" ]; then
	mkdir -p "$(dirname "$FINDINGS")"
	rm -f "$FINDINGS"
fi

PREBUILT=$KERNEL
if [ -z "$KERNEL" ]; then
	stage "building the guest kernel (cached after the first build)"
	KBUILD=$("$GUEST/kernel/build.sh" --out "$OUT" "${KERNEL_ARGS[@]}")
	stage "building the test initramfs (cached)"
	"$GUEST/initramfs/build.sh" --kernel-build "$KBUILD" --out "$OUT/initramfs.cpio" "${INITRAMFS_ARGS[@]}" >/dev/null
	KERNEL=$OUT/bzImage INITRD=$OUT/initramfs.cpio
fi

mode=$NESTED reason=''
if [ "$mode" = auto ]; then
	if reason=$(direct_reason); then mode=never; else mode=always; fi
fi
if [ "$mode" = never ]; then
	stage "booting $CONFIG directly under mmiolab"
	TRACE_ARGS=()
	if [ -n "$TRACE" ]; then
		TRACE_ARGS=(--trace "$TRACE")
		for f in "${FILTERS[@]}"; do
			TRACE_ARGS+=(--trace-filter "$f")
		done
	fi
	[ -z "$FINDINGS" ] || TRACE_ARGS+=(--check-json "$FINDINGS")
	# prebuilt files given: they replace the machine file's (the bundled ones are its own)
	BOOT_ARGS=()
	[ -z "$PREBUILT" ] || BOOT_ARGS=(--kernel "$KERNEL" --initrd "$INITRD")
	set +e
	if [ -n "$SNAPSHOT_AT" ]; then
		# Boot to the text and save; then the run proper is a restore of that snapshot.
		rm -rf "$OUT/snapshot"
		"$VMM" run --config "$CONFIG" --timeout "$TIMEOUT" "${BOOT_ARGS[@]}" \
			--snapshot-after "console:$SNAPSHOT_AT" --snapshot-dir "$OUT/snapshot" </dev/null | tee "$LOG"
		rc=${PIPESTATUS[0]}
		[ "$rc" -eq 0 ] || exit "$rc"
		TRACE_ARGS+=(--restore "$OUT/snapshot")
		# Each attempt is a new process restoring the same snapshot (copy-on-write: the
		# snapshot is unchanged by a run); a failed one is retried without a new boot.
		attempts=$((RETRIES + 1)) attempt=1
		while :; do
			echo "mmiolab: restoring the snapshot taken at console:$SNAPSHOT_AT (attempt $attempt of $attempts)" | tee -a "$LOG"
			"$VMM" run --config "$CONFIG" --timeout "$TIMEOUT" "${TRACE_ARGS[@]}" </dev/null | tee -a "$LOG"
			rc=${PIPESTATUS[0]}
			[ "$rc" -ne 0 ] && [ "$attempt" -lt "$attempts" ] || break
			attempt=$((attempt + 1))
		done
	else
		"$VMM" run --config "$CONFIG" --timeout "$TIMEOUT" "${BOOT_ARGS[@]}" "${TRACE_ARGS[@]}" </dev/null | tee "$LOG"
		rc=${PIPESTATUS[0]}
	fi
	exit "$rc"
fi

stage "running nested: ${reason:-requested with --nested always}; the outer VM is QEMU TCG -cpu max with the same kernel"
L1DIR=$OUT/l1-$(basename "$CONFIG" .toml)
rm -rf "$L1DIR/files"
mkdir -p "$L1DIR/files"
# Inside the outer VM the files sit next to the machine file: the kernel and initrd, and
# each device description (`description = "..."`) and SVD file (`svd = { file = "..." }`)
# the machine file names, copied into files/ and renamed there.
CONFIG_DIR=$(dirname "$CONFIG")
n=0
desc_re='^([[:space:]]*description[[:space:]]*=[[:space:]]*")([^"]+)(".*)$'
svd_re='^(.*svd[[:space:]]*=[[:space:]]*\{[^}]*file[[:space:]]*=[[:space:]]*")([^"]+)(".*)$'
while IFS= read -r line || [ -n "$line" ]; do
	if [[ $line =~ ^kernel\ = ]]; then
		line='kernel = "bzImage"'
	elif [[ $line =~ ^initrd\ = ]]; then
		line='initrd = "initramfs.cpio"'
	elif [[ $line =~ $desc_re ]] || [[ $line =~ $svd_re ]]; then
		src=${BASH_REMATCH[2]}
		[[ $src = /* ]] || src=$CONFIG_DIR/$src
		[ -f "$src" ] || die "$CONFIG names ${BASH_REMATCH[2]}, and $src does not exist"
		n=$((n + 1))
		copy=files/$n-$(basename "$src")
		cp "$src" "$L1DIR/$copy"
		line=${BASH_REMATCH[1]}$copy${BASH_REMATCH[3]}
	fi
	printf '%s\n' "$line"
done <"$CONFIG" >"$L1DIR/machine.toml"
grep -qE '^kernel = ' "$L1DIR/machine.toml" && grep -qE '^initrd = ' "$L1DIR/machine.toml" ||
	die "$CONFIG must name its kernel and initrd (lines 'kernel = ...' and 'initrd = ...' under [machine])"
"$GUEST/nested/build-l1.sh" --vmm "$VMM" --kernel "$KERNEL" --initrd "$INITRD" \
	--config "$L1DIR/machine.toml" --files "$L1DIR/files" --out "$L1DIR/l1.cpio"
EXTRA=''
[ -z "${MMIOLAB_CONSOLE_TIMESTAMPS:-}" ] || EXTRA="MMIOLAB_CONSOLE_TIMESTAMPS=$MMIOLAB_CONSOLE_TIMESTAMPS"
if [ -n "$TRACE" ]; then
	spec=all
	[ "${#FILTERS[@]}" -eq 0 ] || spec=$(IFS=,; echo "${FILTERS[*]}")
	EXTRA="${EXTRA:+$EXTRA }MMIOLAB_L1_TRACE=$spec"
fi
[ -z "$FINDINGS" ] || EXTRA="${EXTRA:+$EXTRA }MMIOLAB_L1_CHECK=1"
[ -z "$SNAPSHOT_AT" ] || EXTRA="${EXTRA:+$EXTRA }MMIOLAB_L1_SNAPSHOT=$SNAPSHOT_AT MMIOLAB_L1_RETRIES=$RETRIES"
APPEND=()
[ -z "$EXTRA" ] || APPEND=(--append "$EXTRA")
set +e
"$GUEST/nested/run-l1.sh" --kernel "$KERNEL" --initrd "$L1DIR/l1.cpio" --timeout "$TIMEOUT" --log "$LOG" "${APPEND[@]}"
rc=$?
set -e
if [ -n "$TRACE" ]; then
	# The trace's lines between the outer VM's markers, without the console's CRs; only
	# JSON lines, in case the outer kernel printed something meanwhile.
	tr -d '\r' <"$LOG" | sed -n '/^mmiolab-l1: begin trace$/,/^mmiolab-l1: end trace$/p' |
		grep '^{' >"$TRACE.tmp" || true
	mv "$TRACE.tmp" "$TRACE"
	if grep -q '^mmiolab-l1: end trace' <(tr -d '\r' <"$LOG"); then
		stage "trace: $(wc -l <"$TRACE") lines from the outer VM's console into $TRACE"
	else
		stage "trace: the outer VM printed no complete trace; $TRACE holds what there was"
	fi
fi
if [ -n "$FINDINGS" ]; then
	tr -d '\r' <"$LOG" | sed -n '/^mmiolab-l1: begin findings$/,/^mmiolab-l1: end findings$/p' |
		grep '^{' >"$FINDINGS.tmp" || true
	if [ -s "$FINDINGS.tmp" ]; then
		mv "$FINDINGS.tmp" "$FINDINGS"
		stage "findings: the checker's report from the outer VM's console into $FINDINGS"
	else
		rm -f "$FINDINGS.tmp"
		stage "findings: the outer VM printed no findings report"
	fi
fi
exit "$rc"
