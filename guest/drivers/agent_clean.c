// SPDX-License-Identifier: GPL-2.0
/*
 * agent_clean: a driver that does everything in order, for the checker's guest agent
 * (docs/checker.md, "The guest agent"): it claims apidev's registers in both spaces,
 * maps them, reads the ID, unmaps and releases. The host must find nothing about it:
 * "# mmiolab-agent-expect: none".
 */
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>

#include "mmiolab-test.h"

static enum mmiolab_result mmio_claim_map_read_release(void)
{
	void __iomem *regs;
	bool ok;

	if (!request_mem_region(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE, KBUILD_MODNAME))
		return MMIOLAB_FAIL;
	regs = ioremap(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE);
	if (!regs) {
		release_mem_region(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE);
		return MMIOLAB_FAIL;
	}
	ok = MMIOLAB_CHECK("readl(ID)", readl(regs + MMIOLAB_APIDEV_ID_OFFSET),
			   MMIOLAB_APIDEV_ID_RESET);
	/* an out-of-line accessor: the RIP is the kernel's, the module is on the stack */
	ok &= MMIOLAB_CHECK("ioread32(ID)", ioread32(regs + MMIOLAB_APIDEV_ID_OFFSET),
			    MMIOLAB_APIDEV_ID_RESET);
	iounmap(regs);
	release_mem_region(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE);
	return mmiolab_verdict(ok);
}

static enum mmiolab_result ports_claim_map_read_release(void)
{
	void __iomem *port;
	bool ok;

	if (!request_region(MMIOLAB_APIDEV_PIO_BASE, MMIOLAB_APIDEV_PIO_SIZE, KBUILD_MODNAME))
		return MMIOLAB_FAIL;
	ok = MMIOLAB_CHECK("inl(ID)", inl(MMIOLAB_APIDEV_PIO_BASE + MMIOLAB_APIDEV_ID_OFFSET),
			   MMIOLAB_APIDEV_ID_RESET);
	port = ioport_map(MMIOLAB_APIDEV_PIO_BASE, MMIOLAB_APIDEV_PIO_SIZE);
	if (port) {
		ok &= MMIOLAB_CHECK("ioread8(ID)", ioread8(port), MMIOLAB_APIDEV_ID_RESET & 0xff);
		ioport_unmap(port);
	} else {
		ok = false;
	}
	release_region(MMIOLAB_APIDEV_PIO_BASE, MMIOLAB_APIDEV_PIO_SIZE);
	return mmiolab_verdict(ok);
}

static const struct mmiolab_case cases[] = {
	{ "mmio_claim_map_read_release", mmio_claim_map_read_release },
	{ "ports_claim_map_read_release", ports_claim_map_read_release },
};

static int __init agent_clean_init(void)
{
	unsigned int failed;

	printk(KERN_INFO "    # mmiolab-agent-expect: none\n");
	failed = mmiolab_run_cases(cases, ARRAY_SIZE(cases));
	return failed ? -EIO : 0;
}

static void __exit agent_clean_exit(void)
{
}

module_init(agent_clean_init);
module_exit(agent_clean_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mmiolab: a clean driver, no agent findings");
