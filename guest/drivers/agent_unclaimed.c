// SPDX-License-Identifier: GPL-2.0
/*
 * agent_unclaimed: a driver that breaks the checker's `unclaimed-access` rule on purpose
 * (docs/checker.md, "The guest agent"): it maps apidev and reads ID without claiming the
 * range, then claims it, releases it and reads SCRATCH (ioread32) after the release. Expected:
 * exactly the two findings named on its "# mmiolab-agent-expect:" lines.
 */
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>

#include "mmiolab-test.h"

static void __iomem *regs;

static enum mmiolab_result map_without_claim(void)
{
	regs = ioremap(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE);
	if (!regs)
		return MMIOLAB_FATAL;
	/* the device answers: the rule is the driver's, not the hardware's */
	return mmiolab_verdict(MMIOLAB_CHECK("readl(ID) unclaimed",
					     readl(regs + MMIOLAB_APIDEV_ID_OFFSET),
					     MMIOLAB_APIDEV_ID_RESET));
}

static enum mmiolab_result read_after_release(void)
{
	if (!request_mem_region(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE, KBUILD_MODNAME))
		return MMIOLAB_FAIL;
	release_mem_region(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE);
	/*
	 * ioread32 is the kernel's code (lib/iomap.c): the host finds this module as the
	 * return address on the guest stack, not at the RIP
	 */
	(void)ioread32(regs + MMIOLAB_APIDEV_SCRATCH_OFFSET);
	return MMIOLAB_PASS;
}

static enum mmiolab_result unmap(void)
{
	iounmap(regs);
	return MMIOLAB_PASS;
}

static const struct mmiolab_case cases[] = {
	{ "map_without_claim", map_without_claim },
	{ "read_after_release", read_after_release },
	{ "unmap", unmap },
};

static int __init agent_unclaimed_init(void)
{
	unsigned int failed;

	printk(KERN_INFO "    # mmiolab-agent-expect: unclaimed-access apidev.ID\n");
	printk(KERN_INFO "    # mmiolab-agent-expect: unclaimed-access apidev.SCRATCH\n");
	failed = mmiolab_run_cases(cases, ARRAY_SIZE(cases));
	return failed ? -EIO : 0;
}

static void __exit agent_unclaimed_exit(void)
{
}

module_init(agent_unclaimed_init);
module_exit(agent_unclaimed_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mmiolab: accesses apidev without a claim (agent finding on purpose)");
