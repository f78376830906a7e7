#!/bin/sh
# The checker's devmem-poke rule (docs/checker.md): user space reads a device range through
# /dev/mem while a module (devmem_owner) holds a claim of it. The kernel lets it (the low
# 1 MiB bypasses STRICT_DEVMEM's iomem restrictions), the host must report it: exactly one
# finding, devmem-poke on isa_hole, made by no module, in this test.
set -eu
echo "mmiolab-agent-expect: devmem-poke isa_hole"
mmiolab-insmod /lib/modules/mmiolab/devmem_owner.ko
status=0
# what it reads is what silly left there: only the access matters
if value=$(devmem 0xa0000 32); then
	echo "devmem 0xa0000: $value"
else
	echo "devmem 0xa0000 failed"
	status=1
fi
rmmod devmem_owner
exit $status
