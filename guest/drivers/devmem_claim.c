// SPDX-License-Identifier: GPL-2.0
/*
 * devmem_claim: helper for the devmem test. While loaded it holds a busy
 * request_mem_region on the "fixed" regfile, which (CONFIG_IO_STRICT_DEVMEM)
 * makes /dev/mem refuse that range and revokes existing user mappings of it.
 */
#include <linux/ioport.h>
#include <linux/module.h>

#include "mmiolab-test.h"

static int __init devmem_claim_init(void)
{
	if (!request_mem_region(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE, "mmiolab-devmem-claim"))
		return -EBUSY;
	return 0;
}
module_init(devmem_claim_init);

static void __exit devmem_claim_exit(void)
{
	release_mem_region(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE);
}
module_exit(devmem_claim_exit);

MODULE_DESCRIPTION("mmiolab: hold the fixed regfile's memory region busy");
MODULE_LICENSE("GPL");
