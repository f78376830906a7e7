#!/bin/sh
# From user space, after the driver loaded: it bound the tick device, shows its ID in sysfs
# and claimed its registers. Exit status 0 is a pass; everything printed is a diagnostic.
set -e
dev=/sys/bus/platform/drivers/tick/d0000000.tick
[ -e "$dev" ] || { echo "the tick driver did not bind d0000000.tick"; exit 1; }
id=$(cat "$dev/id")
echo "id: $id"
[ "$id" = 0x74310001 ] || { echo "unexpected ID $id"; exit 1; }
grep -q ' : d0000000.tick' /proc/iomem || { echo "the registers are not claimed"; exit 1; }
echo "bound, ID read, registers claimed"
