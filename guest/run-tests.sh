#!/usr/bin/env bash
# Builds what is missing (kernel, test initramfs), boots the Linux test guest under
# mmiolab, directly when the host's KVM can boot Linux, else inside an outer VM (QEMU TCG,
# -cpu max, nested SVM), and judges the result with `mmiolab test`.
set -euo pipefail

SCRIPT_NAME=run-tests.sh
GUEST=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$GUEST/lib/common.sh"

usage() {
	cat <<EOT
Usage: guest/run-tests.sh --vmm BIN [--config MACHINE_TOML] [--nested auto|always|never]
                          [--junit FILE] [--out DIR]

  --vmm BIN       the mmiolab binary
  --config FILE   machine description (default: guest/machines/default.toml); its
                  kernel and initrd must be target/guest/bzImage and initramfs.cpio
  --nested MODE   auto (default): boot directly when /dev/kvm is hardware KVM (the CPU
                  has vmx or svm and the host is not the software kvm_pvm), else nested
  --junit FILE    JUnit XML report
  --out DIR       where the kernel, initramfs and logs go (default: target/guest)
Exit status: 0 only if every guest test and the host-side resource check passed.
EOT
}

VMM= CONFIG=$GUEST/machines/default.toml NESTED=auto JUNIT= OUT=$(dirname "$GUEST")/target/guest
while [ $# -gt 0 ]; do
	case $1 in
	--vmm) VMM=$(realpath "$2"); shift 2 ;;
	--config) CONFIG=$(realpath "$2"); shift 2 ;;
	--nested) NESTED=$2; shift 2 ;;
	--junit) JUNIT=$(realpath -m "$2"); shift 2 ;;
	--out) OUT=$(realpath -m "$2"); shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
[ -n "$VMM" ] && [ -x "$VMM" ] || die "--vmm BIN is required and must be executable (see --help)"
case $NESTED in auto | always | never) ;; *) die "--nested takes auto, always or never" ;; esac
mkdir -p "$OUT"

stage "building the guest kernel (cached after the first build)"
KBUILD=$("$GUEST/kernel/build.sh" --out "$OUT")
stage "building the test initramfs (cached)"
"$GUEST/initramfs/build.sh" --kernel-build "$KBUILD" --out "$OUT/initramfs.cpio" >/dev/null

direct_reason() {
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "/dev/kvm is not usable"; return 1; }
	[ ! -d /sys/module/kvm_pvm ] || { echo "this host's KVM is the software kvm_pvm, which cannot usefully boot Linux"; return 1; }
	grep -qw -e vmx -e svm /proc/cpuinfo || { echo "the CPU has no vmx/svm: KVM here is not hardware-assisted"; return 1; }
}

JUNIT_ARGS=()
[ -z "$JUNIT" ] || JUNIT_ARGS=(--junit "$JUNIT")
mode=$NESTED
if [ "$mode" = auto ]; then
	if reason=$(direct_reason); then mode=never; else mode=always; fi
fi
if [ "$mode" = never ]; then
	stage "booting the guest directly under mmiolab"
	exec "$VMM" test --config "$CONFIG" "${JUNIT_ARGS[@]}"
fi

stage "running nested: ${reason:-requested with --nested always}; the outer VM is QEMU TCG -cpu max with the same kernel"
L1DIR=$OUT/l1
mkdir -p "$L1DIR"
# Inside the outer VM the files sit next to the machine file.
sed -e 's#^kernel = .*#kernel = "bzImage"#' -e 's#^initrd = .*#initrd = "initramfs.cpio"#' "$CONFIG" >"$L1DIR/machine.toml"
"$GUEST/nested/build-l1.sh" --vmm "$VMM" --kernel "$OUT/bzImage" --initrd "$OUT/initramfs.cpio" \
	--config "$L1DIR/machine.toml" --out "$L1DIR/l1.cpio"
set +e
"$GUEST/nested/run-l1.sh" --kernel "$OUT/bzImage" --initrd "$L1DIR/l1.cpio" --timeout 600 --log "$L1DIR/console.log"
rc=$?
set -e
stage "outer VM finished (guest status $rc); judging its console log"
exec "$VMM" test --config "$CONFIG" --from-log "$L1DIR/console.log" "${JUNIT_ARGS[@]}"
