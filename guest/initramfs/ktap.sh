# shellcheck shell=sh
# The KTAP reporting of mmiolab's test initramfs (busybox sh), sourced by /init: the bundled
# one (guest/initramfs/init) and the one `mmiolab guest initramfs` writes for a user's
# modules and scripts (guest/initramfs/user-init). Both are carried by the mmiolab binary.
MODDIR=/lib/modules/mmiolab
KUNITDIR=/lib/modules/kunit

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# the KTAP lines are KERN_INFO: show them even if the cmdline said "quiet"
dmesg -n 7

# log LINE: print through the kernel log, so our lines and the modules'
# printk output reach the console in order
log() {
	echo "$*" >/dev/kmsg
}

passed=0
failed=0
n=0

# begin NAME: tell the checker's guest agent (guest/agent, loaded first) which test runs
# now, so the host attributes each access and finding to it; an empty NAME ends it. Without
# the agent (or without --check on the host, where it is idle) this does nothing.
AGENT_TEST=/sys/module/mmiolab_agent/parameters/test
begin() {
	[ ! -w "$AGENT_TEST" ] || echo "$1" >"$AGENT_TEST"
}

# result STATUS NAME [DIAGNOSTIC]: the top-level KTAP line of one test
result() {
	begin ''
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		passed=$((passed + 1))
		log "ok $n $2"
	else
		failed=$((failed + 1))
		[ -z "${3:-}" ] || log "# $2: $3"
		log "not ok $n $2"
	fi
}

# module_test NAME: the module's init fails if one of its cases failed
# (mmiolab-insmod, not busybox insmod: that one would run a failing init twice)
module_test() {
	begin "$1"
	if err=$(mmiolab-insmod "$MODDIR/$1.ko" 2>&1); then
		rmmod "$1"
		result 0 "$1"
	else
		result 1 "$1" "$err"
	fi
}

# dump_resources: /proc/iomem and /proc/ioports between the markers `mmiolab test` reads,
# through the kernel log (in order with the modules' output)
dump_resources() {
	for f in iomem ioports; do
		log "mmiolab: begin /proc/$f"
		while IFS= read -r line; do
			log "$line"
		done <"/proc/$f"
		log "mmiolab: end /proc/$f"
	done
}

# script_test FILE: a shell script test (/tests/NAME.sh: the bundled ones exercise Linux's
# own drivers, the user's come from initramfs/build.sh --test); its exit status is the
# result, every line it prints a diagnostic of it
script_test() {
	name=$(basename "$1" .sh)
	begin "$name"
	out=$(sh "$1" 2>&1)
	rc=$?
	while IFS= read -r line; do
		log "    # $line"
	done <<EOT
$out
EOT
	result "$rc" "$name" "exit status $rc"
}

# kunit_tests: load every KUnit test module of /lib/modules/kunit (the bundled suites, and
# the user's: initramfs/build.sh puts every module with KUnit suites there). KUnit runs a
# module's suites when it loads and prints each as a top-level KTAP test, numbered from 1 on
# a counter that restarts whenever a KUnit module is removed: so they run first, all loaded
# before any is removed, and /init numbers its own tests after them. Their verdicts are
# counted from the kernel log: at this point its only top-level result lines are theirs
# (and those printed here for a module that did not load).
kunit_tests() {
	loaded=
	for m in "$KUNITDIR"/*.ko; do
		[ -e "$m" ] || continue
		name=$(basename "$m" .ko)
		suites=$(mmiolab-insmod --kunit-suites "$m") || suites=0
		# names the module for the suites that follow: the trace's test boundaries
		# (begin) carry the module's name, the suites their own (docs/linux.md, JUnit)
		log "# mmiolab-module: $name"
		begin "$name"
		if err=$(mmiolab-insmod "$m" 2>&1); then
			loaded="$loaded $name"
			n=$((n + suites))
		else
			# its suites never ran: one failed result in place of each
			while [ "$suites" -gt 0 ]; do
				result 1 "$name" "$err"
				suites=$((suites - 1))
			done
		fi
	done
	begin ''
	kfailed=$(dmesg | grep -cE '^\[ *[0-9.]+\] not ok [0-9]+ ')
	kran=$(dmesg | grep -cE '^\[ *[0-9.]+\] (not )?ok [0-9]+ ')
	failed=$kfailed
	passed=$((kran - kfailed))
	for name in $loaded; do
		rmmod "$name" || log "# rmmod $name failed"
	done
}

# count_tests: scripts = the script tests of /tests, kunit = the KUnit suites of the modules
# of /lib/modules/kunit (read from their .kunit_test_suites sections), for the plan
count_tests() {
	scripts=0
	for t in /tests/*.sh; do
		[ -e "$t" ] && scripts=$((scripts + 1))
	done
	kunit=0
	for m in "$KUNITDIR"/*.ko; do
		[ -e "$m" ] || continue
		k=$(mmiolab-insmod --kunit-suites "$m") || k=0
		kunit=$((kunit + k))
	done
}

# finish: the final resource dumps, the summary line, and the end of the VM through the exit
# port (status 0: all passed, 1: a failure)
finish() {
	for f in iomem ioports; do
		echo "mmiolab: begin /proc/$f"
		cat "/proc/$f"
		echo "mmiolab: end /proc/$f"
	done
	echo "mmiolab: $passed passed, $failed failed"

	# mmiolab.end=poweroff on the kernel command line: end by powering the machine off (the
	# power-off path itself is what is being tested) instead of reporting through the exit port.
	if grep -qw mmiolab.end=poweroff /proc/cmdline; then
		echo "mmiolab: powering off"
		poweroff -f
	fi
	if [ "$failed" -eq 0 ]; then
		mmiolab-exit 0
	else
		mmiolab-exit 1
	fi
	echo "mmiolab: the exit port did not stop the VM; rebooting"
	reboot -f
}
