#!/bin/sh
# Linux's gpio-mmio driver (drivers/gpio/gpio-mmio.c, unmodified) on models/gpio-mmio.toml,
# bound through the device tree (gpio@d0040000, reg-names dat/set/clr/dirout), used
# through the GPIO character device by gpio-test (guest/userspace/gpio-test.c). The same
# registers are at I/O ports 0x140-0x157: gpio-test drives the model's INPUT hook there.
set -eu
for c in /sys/bus/gpio/devices/gpiochip*; do
	case $(readlink "$c") in
	*/d0040000.gpio/*)
		chip=/dev/$(basename "$c")
		echo "gpio_mmio: d0040000.gpio is $chip"
		exec gpio-test "$chip" 0x140
		;;
	esac
done
echo "gpio_mmio: no GPIO chip of d0040000.gpio (did gpio-mmio probe? dmesg: $(dmesg | grep -i gpio | tail -n 3))"
exit 1
