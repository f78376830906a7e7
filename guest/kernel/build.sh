#!/usr/bin/env bash
# Build the mmiolab guest kernel (x86_64 bzImage + a tree for out-of-tree modules).
set -euo pipefail

# Bump when this script changes in a way that changes the build result.
BUILD_SH_VERSION=2

SCRIPT_NAME=kernel/build.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$HERE/../lib/common.sh"

FRAGMENT=$HERE/config.fragment
PATCHES=("$HERE"/patches/*.patch)
DISTRO_PKG=linux-source-6.1
DISTRO_TARBALL=/usr/src/linux-source-6.1.tar.xz

usage() {
	cat <<EOF
Usage: guest/kernel/build.sh [--out DIR] [--fragment FILE]...

Builds the guest kernel: make tinyconfig + config.fragment + your fragments
(merge_config.sh, in that order), make olddefconfig, a check that every
requested symbol of every fragment took effect, then
make all + modules_prepare, out of tree, into a cache directory
  \${MMIOLAB_CACHE:-\$HOME/.cache/mmiolab}/kernel/<source version>-<hash>/
where <hash> covers config.fragment, your fragments, patches/*.patch and this
script's version. A second run with the same key does nothing ("cached").

Kernel source: \$KERNEL_SRC if set (patches/*.patch applied in place, must be
a clean tree), else the distribution package $DISTRO_PKG ($DISTRO_TARBALL,
installed with apt-get if missing) extracted into the cache, one tree per
patch set.

Prints progress on stderr and, on stdout, only the build directory (use it as
the kbuild dir: make -C <dir> M=\$PWD modules).

Options:
  --out DIR   also copy arch/x86/boot/bzImage to DIR/bzImage
  --fragment FILE
              merge FILE (lines CONFIG_X=y, CONFIG_X=m, CONFIG_X=<value> or
              '# CONFIG_X is not set') after config.fragment, e.g. the
              options your driver needs; repeatable
  -h, --help  this text
EOF
}

OUT_DIR=
FRAGMENTS=("$FRAGMENT")
while [ $# -gt 0 ]; do
	case $1 in
	--out) [ $# -ge 2 ] || die "--out needs a directory"; OUT_DIR=$2; shift 2 ;;
	--fragment)
		[ $# -ge 2 ] || die "--fragment needs a file"
		[ -f "$2" ] || die "--fragment $2: not a regular file"
		FRAGMENTS+=("$(realpath "$2")")
		shift 2
		;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

# read_fragments: WANT[sym] = the value the last fragment that names sym asks for ("" for
# "is not set"), FROM[sym] = that fragment; dies on a line of another form.
declare -A WANT FROM
read_fragments() {
	local f line n
	for f in "${FRAGMENTS[@]}"; do
		n=0
		while IFS= read -r line || [ -n "$line" ]; do
			n=$((n + 1))
			if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.+)$ ]]; then
				WANT[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
			elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
				WANT[${BASH_REMATCH[1]}]=
			elif [[ -z $line || $line == \#* ]]; then
				continue
			else
				die "$f:$n: unsupported line '$line' (use CONFIG_X=y, CONFIG_X=m, CONFIG_X=value or '# CONFIG_X is not set')"
			fi
			FROM[${BASH_REMATCH[1]}]=$f
		done <"$f"
	done
}

read_fragments

need_pkgs make gcc libc6-dev flex bison bc libelf-dev libssl-dev cpio xz-utils patch util-linux

# apply_patches SRC: apply each of patches/*.patch unless already applied.
apply_patches() {
	local p
	for p in "${PATCHES[@]}"; do
		if patch -d "$1" -p1 -R -f -s --dry-run <"$p" >/dev/null 2>&1; then
			continue
		fi
		patch -d "$1" -p1 -f -s --dry-run <"$p" >/dev/null 2>&1 ||
			die "$p does not apply to $1 (not a 6.1 tree?)"
		patch -d "$1" -p1 -f -s <"$p"
		stage "applied $(basename "$p")"
	done
}

mkdir -p "$MMIOLAB_CACHE/kernel"
lock_dir "$MMIOLAB_CACHE/kernel"

if [ -n "${KERNEL_SRC:-}" ]; then
	SRC=$(cd "$KERNEL_SRC" 2>/dev/null && pwd) || die "KERNEL_SRC=$KERNEL_SRC is not a directory"
	if [ ! -f "$SRC/Makefile" ] || [ ! -f "$SRC/drivers/of/Kconfig" ]; then
		die "KERNEL_SRC=$SRC does not look like a Linux source tree"
	fi
	[ ! -f "$SRC/.config" ] ||
		die "KERNEL_SRC=$SRC has an in-tree .config; out-of-tree builds need a clean tree (make mrproper)"
	SRC_VERSION="src-$(make -s -C "$SRC" kernelversion)-$(printf %s "$SRC" | short_hash | cut -c1-8)"
	apply_patches "$SRC"
else
	need_pkgs "$DISTRO_PKG"
	[ -f "$DISTRO_TARBALL" ] || die "$DISTRO_PKG is installed but $DISTRO_TARBALL is missing"
	SRC_VERSION="$DISTRO_PKG-$(dpkg-query -W -f='${Version}' "$DISTRO_PKG")"
	SRC_PARENT=$MMIOLAB_CACHE/kernel/src/$SRC_VERSION-$(cat "${PATCHES[@]}" | short_hash)
	SRC=$SRC_PARENT/$DISTRO_PKG
	if [ ! -f "$SRC_PARENT/.patched" ]; then
		stage "extracting $DISTRO_TARBALL"
		rm -rf "$SRC_PARENT.tmp"
		mkdir -p "$SRC_PARENT.tmp"
		tar -C "$SRC_PARENT.tmp" -xJf "$DISTRO_TARBALL"
		[ -f "$SRC_PARENT.tmp/$DISTRO_PKG/Makefile" ] ||
			die "$DISTRO_TARBALL did not contain $DISTRO_PKG/Makefile"
		apply_patches "$SRC_PARENT.tmp/$DISTRO_PKG"
		touch "$SRC_PARENT.tmp/.patched"
		rm -rf "$SRC_PARENT"
		mv "$SRC_PARENT.tmp" "$SRC_PARENT"
	fi
fi

# Only the extra fragments' contents (not their paths) enter the key, after the bundled
# one's, so the key of a build without --fragment is what it always was.
KEY=$SRC_VERSION-$({ cat "${FRAGMENTS[@]}" "${PATCHES[@]}"; echo "build.sh $BUILD_SH_VERSION"; } | short_hash)
BUILD=$MMIOLAB_CACHE/kernel/$KEY
DONE_STAMP=$BUILD/.mmiolab-complete
BZIMAGE=$BUILD/arch/x86/boot/bzImage

copy_out() {
	[ -n "$OUT_DIR" ] || return 0
	mkdir -p "$OUT_DIR"
	cp "$BZIMAGE" "$OUT_DIR/bzImage"
	stage "copied bzImage to $OUT_DIR/bzImage"
}

if [ -f "$DONE_STAMP" ] && [ -f "$BZIMAGE" ]; then
	stage "cached: $BUILD"
	copy_out
	echo "$BUILD"
	exit 0
fi

mkdir -p "$BUILD"
LOG=$BUILD/mmiolab-build.log
: >"$LOG"
JOBS=$(nproc)
stage "building $KEY with -j$JOBS (log: $LOG)"

MAKE_PID=
trap '[ -z "$MAKE_PID" ] || kill "$MAKE_PID" 2>/dev/null || true' EXIT

# kmake STAGE TARGET...: run make in the background, report every ~20 s.
kmake() {
	local name=$1 last=$SECONDS ccs
	shift
	stage "$name"
	make -C "$SRC" O="$BUILD" -j"$JOBS" "$@" >>"$LOG" 2>&1 &
	MAKE_PID=$!
	while kill -0 "$MAKE_PID" 2>/dev/null; do
		sleep 2
		if ((SECONDS - last >= 20)); then
			last=$SECONDS
			ccs=$(grep -c '^  CC' "$LOG" || true)
			stage "$name: $ccs files compiled so far; last: $(tail -n1 "$LOG")"
		fi
	done
	if ! wait "$MAKE_PID"; then
		MAKE_PID=
		tail -n 30 "$LOG" >&2
		die "make $* failed; full log: $LOG"
	fi
	MAKE_PID=
}

# check_config: every symbol of the fragments must have its requested value.
check_config() {
	local sym bad=()
	for sym in "${!WANT[@]}"; do
		if [ -n "${WANT[$sym]}" ]; then
			grep -qxF "$sym=${WANT[$sym]}" "$BUILD/.config" ||
				bad+=("$sym wanted =${WANT[$sym]} (${FROM[$sym]}), got: $(grep -E "^(# )?${sym}[= ]" "$BUILD/.config" || echo 'absent')")
		else
			! grep -qE "^$sym=" "$BUILD/.config" ||
				bad+=("$sym wanted unset (${FROM[$sym]}), got: $(grep -E "^$sym=" "$BUILD/.config")")
		fi
	done
	if [ ${#bad[@]} -ne 0 ]; then
		printf '  %s\n' "${bad[@]}" >&2
		die "${#bad[@]} config symbol(s) did not take effect after olddefconfig (see above; dependencies missing?)"
	fi
}

kmake "tinyconfig" tinyconfig
stage "merging ${#FRAGMENTS[@]} fragment(s)"
(cd "$SRC" && scripts/kconfig/merge_config.sh -m -O "$BUILD" "$BUILD/.config" "${FRAGMENTS[@]}") >>"$LOG" 2>&1 ||
	die "merge_config.sh failed; log: $LOG"
kmake "olddefconfig" olddefconfig
check_config
stage "config checked: all ${#WANT[@]} fragment symbols as requested"
kmake "make all (vmlinux, bzImage, modpost)" all
kmake "modules_prepare" modules_prepare
[ -f "$BZIMAGE" ] || die "build finished but $BZIMAGE is missing"
touch "$DONE_STAMP"
stage "done: $(stat -c %s "$BZIMAGE") byte bzImage in $BUILD"
copy_out
echo "$BUILD"
