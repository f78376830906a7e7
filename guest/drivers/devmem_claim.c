// SPDX-License-Identifier: GPL-2.0
/*
 * devmem_claim: helper for the devmem test. While loaded it holds busy
 * request_mem_region claims on the "fixed" regfile and on apidev's memslot-backed RAM
 * window, which (CONFIG_IO_STRICT_DEVMEM) makes /dev/mem refuse those ranges and revokes
 * existing user mappings of them. At load it reads the RAM window's first 8 bytes through
 * ioremap into the read-only parameter ram_word, so the test can compare what it wrote
 * through /dev/mem with what the kernel sees.
 */
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>

#include "mmiolab-test.h"

#define NAME		"mmiolab-devmem-claim"
#define RAM_BASE	(MMIOLAB_APIDEV_BASE + MMIOLAB_APIDEV_RAM_OFFSET)
#define RAM_SIZE	MMIOLAB_APIDEV_RAM_SIZE

static unsigned long long ram_word;
module_param(ram_word, ullong, 0444);
MODULE_PARM_DESC(ram_word, "the RAM window's first 8 bytes at load, little-endian (read-only)");

static int __init devmem_claim_init(void)
{
	void __iomem *ram;

	if (!request_mem_region(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE, NAME))
		return -EBUSY;
	if (!request_mem_region(RAM_BASE, RAM_SIZE, NAME))
		goto err_fixed;
	ram = ioremap(RAM_BASE, RAM_SIZE);
	if (!ram)
		goto err_ram;
	ram_word = readq(ram);
	iounmap(ram);
	return 0;

err_ram:
	release_mem_region(RAM_BASE, RAM_SIZE);
err_fixed:
	release_mem_region(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE);
	return -EBUSY;
}
module_init(devmem_claim_init);

static void __exit devmem_claim_exit(void)
{
	release_mem_region(RAM_BASE, RAM_SIZE);
	release_mem_region(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE);
}
module_exit(devmem_claim_exit);

MODULE_DESCRIPTION("mmiolab: hold the fixed regfile and a RAM window busy");
MODULE_LICENSE("GPL");
