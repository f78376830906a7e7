/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The register checker's rule tests (docs/checker.md, "Rule tests"): each rule_*.c module
 * claims and maps apidev as a correct driver does, then its one case breaks one rule of
 * apidev's description (guest/machines/devices/apidev.toml) on purpose, and it announces
 * the finding the host must report about it on a "# mmiolab-agent-expect:" line. The
 * machine file allows that rule in that test only ([device.check.allow_in] of apidev), so
 * the run stays green while the host checks that exactly that finding was made.
 */
#ifndef MMIOLAB_RULES_H
#define MMIOLAB_RULES_H

#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>

#include "mmiolab-test.h"

/* apidev's registers, claimed and mapped by the module for its case */
static void __iomem *regs;

static inline int rule_claim(void)
{
	if (!request_mem_region(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE, KBUILD_MODNAME))
		return -EBUSY;
	regs = ioremap(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE);
	if (!regs) {
		release_mem_region(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE);
		return -ENOMEM;
	}
	return 0;
}

static inline void rule_release(void)
{
	iounmap(regs);
	release_mem_region(MMIOLAB_APIDEV_BASE, MMIOLAB_APIDEV_SIZE);
}

/*
 * The module: announce EXPECT ("RULE DEVICE.REGISTER"), claim, run CASE as a one-case
 * KTAP subtest, release. Everything the case did wrong is the rule it is named after.
 */
#define MMIOLAB_RULE_TEST(expect, case_fn)						\
	static const struct mmiolab_case rule_cases[] = { { #case_fn, case_fn } };	\
	static int __init rule_init(void)						\
	{										\
		unsigned int failed;							\
		int err;								\
											\
		printk(KERN_INFO "    # mmiolab-agent-expect: " expect "\n");		\
		err = rule_claim();							\
		if (err)								\
			return err;							\
		failed = mmiolab_run_cases(rule_cases, ARRAY_SIZE(rule_cases));	\
		rule_release();								\
		return failed ? -EIO : 0;						\
	}										\
	static void __exit rule_exit(void)						\
	{										\
	}										\
	module_init(rule_init);								\
	module_exit(rule_exit);								\
	MODULE_LICENSE("GPL")

#endif /* MMIOLAB_RULES_H */
