# shellcheck shell=bash
# Shared helpers for the guest/ build scripts. Source it; do not execute it.
# The including script sets SCRIPT_NAME before sourcing.

MMIOLAB_CACHE=${MMIOLAB_CACHE:-$HOME/.cache/mmiolab}
_T0=$SECONDS

die() {
	echo "$SCRIPT_NAME: error: $*" >&2
	exit 1
}

# Progress goes to stderr so that stdout carries only the script's result.
stage() {
	printf '[%s %4ds] %s\n' "$SCRIPT_NAME" $((SECONDS - _T0)) "$*" >&2
}

# Run a command as root: directly when we are root, else through sudo.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

# need_pkgs PKG...: install the Debian/Ubuntu packages that are missing.
need_pkgs() {
	local missing=() p
	command -v dpkg-query >/dev/null ||
		die "not a Debian-like system; make sure these are installed: $*"
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	stage "installing missing packages: ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
		die "apt-get update failed"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >&2 ||
		die "apt-get install ${missing[*]} failed"
}

# short_hash: first 16 hex digits of the sha256 of stdin (cache keys).
short_hash() {
	sha256sum | cut -c1-16
}

# lock_dir DIR: take an exclusive lock (fd 9) so concurrent runs do not build twice.
lock_dir() {
	mkdir -p "$1"
	exec 9>"$1/.lock"
	flock 9
}

# direct_reason: succeed when /dev/kvm can boot Linux directly (hardware KVM); else fail,
# printing why (then Linux guests run nested, inside QEMU TCG)
direct_reason() {
	if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		echo "/dev/kvm is not usable"
		return 1
	fi
	[ ! -d /sys/module/kvm_pvm ] || { echo "this host's KVM is the software kvm_pvm, which cannot usefully boot Linux"; return 1; }
	grep -qw -e vmx -e svm /proc/cpuinfo || { echo "the CPU has no vmx/svm: KVM here is not hardware-assisted"; return 1; }
}
