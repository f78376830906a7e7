// SPDX-License-Identifier: GPL-2.0
/*
 * devmem_owner: helper of the devmem_poke script test (guest/initramfs/tests). While loaded
 * it holds a busy claim of the ISA hole's first page, as a driver of that memory would; a
 * /dev/mem mapping of it is still allowed (x86 lets the low 1 MiB bypass STRICT_DEVMEM's
 * iomem restrictions), so user space can poke the range behind the driver's back: the
 * checker's devmem-poke rule (docs/checker.md). It makes no access itself.
 */
#include <linux/ioport.h>
#include <linux/module.h>

#include "mmiolab-test.h"

#define OWNED_SIZE 0x1000

static int __init devmem_owner_init(void)
{
	if (!request_mem_region(MMIOLAB_ISA_HOLE_BASE, OWNED_SIZE, KBUILD_MODNAME))
		return -EBUSY;
	return 0;
}

static void __exit devmem_owner_exit(void)
{
	release_mem_region(MMIOLAB_ISA_HOLE_BASE, OWNED_SIZE);
}

module_init(devmem_owner_init);
module_exit(devmem_owner_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mmiolab: holds a claim of the ISA hole's first page (devmem_poke test helper)");
