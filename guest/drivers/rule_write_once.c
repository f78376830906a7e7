// SPDX-License-Identifier: GPL-2.0
/*
 * rule_write_once: writes apidev's write-once ONCE.KEY twice with different values
 * (write-once-again, mmiolab-rules.h). The first write after reset is the one that counts;
 * the module runs once per boot.
 */
#include "mmiolab-rules.h"

static enum mmiolab_result write_key_twice(void)
{
	writel(0x11, regs + MMIOLAB_APIDEV_ONCE_OFFSET);
	writel(0x22, regs + MMIOLAB_APIDEV_ONCE_OFFSET);
	return MMIOLAB_PASS;
}

MMIOLAB_RULE_TEST("write-once-again apidev.ONCE", write_key_twice);
MODULE_DESCRIPTION("mmiolab: writes a write-once field twice (checker finding on purpose)");
