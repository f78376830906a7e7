# shellcheck shell=bash
# run_qemu for the guest/ scripts. Source after common.sh.
#
# Exit-port protocol: the guest's mmiolab-exit helper prints the line
# "mmiolab-exit: status N", drains the console, then does outl(N, 0xf4).
# QEMU's isa-debug-exit (iobase=0xf4, iosize=4) then exits with (N << 1) | 1
# (truncated to 8 bits by the OS). QEMU also exits with 1 on its own errors
# and with 0 when the guest resets under -no-reboot, so N is taken from the
# last marker line and accepted only if QEMU's code matches it.

# run_qemu TIMEOUT LOG QEMU_ARG...: run qemu-system-x86_64 with the console on
# stdout (also saved to LOG) and the exit device; returns the guest's status
# N, or 124 on timeout, or 125 if the guest did not report a status.
run_qemu() {
	local timeout=$1 log=$2 rc status
	shift 2
	need_pkgs qemu-system-x86 coreutils
	stage "starting qemu-system-x86_64 (timeout ${timeout}s, console log $log)"
	set +e
	timeout -k 10 "$timeout" qemu-system-x86_64 -nographic -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=4 "$@" </dev/null 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		stage "QEMU timed out after ${timeout}s"
		return 124
	fi
	status=$(grep -a 'mmiolab-exit: status [0-9]' "$log" | tail -n1 | tr -d '\r' |
		sed 's/.*mmiolab-exit: status \([0-9]*\).*/\1/')
	if [ -n "$status" ] && [ $(((status << 1 | 1) & 255)) -eq "$rc" ]; then
		stage "guest exit status $status (QEMU exit code $rc = (status << 1) | 1)"
		return "$status"
	fi
	if [ -n "$status" ]; then
		stage "QEMU exit code $rc does not match the guest's last reported status $status"
	elif [ "$rc" -eq 0 ]; then
		stage "the guest reset or powered off without writing the exit port"
	elif grep -aq 'Kernel panic' "$log"; then
		stage "the guest kernel panicked (QEMU exit code $rc)"
	else
		stage "QEMU failed (exit code $rc) before the guest reported a status"
	fi
	return 125
}
