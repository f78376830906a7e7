// SPDX-License-Identifier: GPL-2.0
/*
 * agent_leak: a driver that breaks the checker's `leaked-claim` and `leaked-mapping`
 * rules on purpose (docs/checker.md, "The guest agent"): it claims and maps apidev's
 * registers, reads ID (claimed: no finding) and is unloaded without releasing or
 * unmapping anything. The claim carries the name the kernel gives apidev's platform
 * device, so the guest's last /proc/iomem still matches `mmiolab tree`. Run it last:
 * apidev stays claimed until the guest ends. The name is a kstrdup, leaked with the claim:
 * a string of the module itself would be freed at unload, and the next read of
 * /proc/iomem would fault on it (seen: "BUG: unable to handle page fault" in r_show).
 */
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "mmiolab-test.h"

static void __iomem *regs;

static enum mmiolab_result claim_and_map(void)
{
	const char *name = kstrdup("d0020000.apidev", GFP_KERNEL);

	if (!name || !request_mem_region(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE, name))
		return MMIOLAB_FATAL;
	regs = ioremap(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE);
	return regs ? MMIOLAB_PASS : MMIOLAB_FATAL;
}

static enum mmiolab_result read_claimed(void)
{
	return mmiolab_verdict(MMIOLAB_CHECK("readl(ID)", readl(regs + MMIOLAB_APIDEV_ID_OFFSET),
					     MMIOLAB_APIDEV_ID_RESET));
}

static const struct mmiolab_case cases[] = {
	{ "claim_and_map", claim_and_map },
	{ "read_claimed", read_claimed },
};

static int __init agent_leak_init(void)
{
	unsigned int failed;

	printk(KERN_INFO "    # mmiolab-agent-expect: leaked-claim apidev\n");
	printk(KERN_INFO "    # mmiolab-agent-expect: leaked-mapping apidev\n");
	failed = mmiolab_run_cases(cases, ARRAY_SIZE(cases));
	return failed ? -EIO : 0;
}

static void __exit agent_leak_exit(void)
{
	/* on purpose: no iounmap, no release_mem_region */
}

module_init(agent_leak_init);
module_exit(agent_leak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mmiolab: leaks a claim and a mapping of apidev (agent findings on purpose)");
