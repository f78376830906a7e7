#!/bin/sh
# Linux's parport_pc (unmodified, built as modules) on models/parport.toml at 0x378: it
# must detect the port (parport_SPP_supported, the EPP timeout bit, PS/2 direction), claim
# 0x378-0x37a, and give the ports back when it is removed. Runs after LDD3's short has
# released 0x378.
set -eu
KMOD=/lib/modules/kernel
mmiolab-insmod "$KMOD/parport.ko"
mmiolab-insmod "$KMOD/parport_pc.ko"
status=0
found=$(dmesg | grep 'parport0: PC-style at 0x378' | tail -n 1) || true
if [ -z "$found" ]; then
	echo "parport_pc: no 'parport0: PC-style at 0x378' in the kernel log"
	status=1
else
	echo "parport_pc: ${found#*] }"
	case $found in
	*PCSPP*TRISTATE*) ;;
	*) echo "parport_pc: want modes PCSPP and TRISTATE (the model's PS/2 direction bit)"; status=1 ;;
	esac
fi
if ! grep -q '0378-037a : parport0$' /proc/ioports; then
	echo "parport_pc: /proc/ioports has no 0378-037a : parport0"
	status=1
fi
rmmod parport_pc
rmmod parport
if grep -q parport0 /proc/ioports; then
	echo "parport_pc: parport0 still holds ports after rmmod"
	status=1
fi
exit $status
