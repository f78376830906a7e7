#!/bin/sh
# Linux's 8250 driver (unmodified) on models/uart16550.toml, twice:
# - legacy COM2, ports 0x2f8-0x2ff, IRQ 3, not in the device tree: found by the 8250
#   core's own autoconfiguration (scratch, IER, loopback and FIFO tests);
# - uart1@d0041000 through the device tree (of_serial: reg-shift 2, reg-io-width 4).
# Each must be identified as a 16550A and carry bytes in loopback (serial-loopback,
# guest/userspace/serial-loopback.c).
set -eu
# tty_with ATTR VALUE: the ttyS whose sysfs ATTR reads VALUE
tty_with() {
	for t in /sys/class/tty/ttyS*; do
		if [ "$(cat "$t/$1")" = "$2" ]; then
			basename "$t"
			return 0
		fi
	done
	echo "serial_8250: no ttyS has $1 = $2" >&2
	return 1
}
# interrupts_of TTY: the tty's line of /proc/interrupts must count interrupts taken from
# the interrupt controller's input $PIN (the machine file's irq)
interrupts_of() {
	irq=$(cat "/sys/class/tty/$1/irq")
	line=$(grep "^ *$irq:" /proc/interrupts) || line=
	tty=$1
	# split the line into its fields (count, controller, input, name)
	# shellcheck disable=SC2086
	set -- $line
	echo "serial_8250: $tty, /proc/interrupts: $*"
	if [ "${2:-0}" -eq 0 ]; then
		echo "serial_8250: no interrupt counted on IRQ $irq"
		return 1
	fi
	case " $* " in
	*" $PIN-"* | *" XT-PIC "*) ;;
	*) echo "serial_8250: IRQ $irq is not wired to input $PIN"; return 1 ;;
	esac
}
status=0
com2=$(tty_with port 0x2F8)
echo "serial_8250: legacy COM2 is $com2"
serial-loopback "/dev/$com2" || status=1
uart1=$(tty_with iomem_base 0xD0041000)
echo "serial_8250: uart1@d0041000 is $uart1"
# of_serial must have taken reg-shift and reg-io-width from the node: UPIO_MEM32 is 3
for want in io_type:3 iomem_reg_shift:2; do
	got=$(cat "/sys/class/tty/$uart1/${want%%:*}")
	if [ "$got" != "${want#*:}" ]; then
		echo "serial_8250: $uart1 ${want%%:*} is $got, want ${want#*:}"
		status=1
	fi
done
serial-loopback "/dev/$uart1" || status=1
PIN=3 interrupts_of "$com2" || status=1
PIN=6 interrupts_of "$uart1" || status=1
exit $status
