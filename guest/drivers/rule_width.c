// SPDX-License-Identifier: GPL-2.0
/* rule_width: writes apidev's 32-bit-only CFG32 one byte wide (bad-width, mmiolab-rules.h). */
#include "mmiolab-rules.h"

static enum mmiolab_result byte_write(void)
{
	writeb(0x5a, regs + MMIOLAB_APIDEV_CFG32_OFFSET);
	/* the register rejected the access: it still holds its reset value */
	return mmiolab_verdict(MMIOLAB_CHECK("readl(CFG32) after writeb",
					     readl(regs + MMIOLAB_APIDEV_CFG32_OFFSET),
					     MMIOLAB_APIDEV_CFG32_RESET));
}

MMIOLAB_RULE_TEST("bad-width apidev.CFG32", byte_write);
MODULE_DESCRIPTION("mmiolab: an access width the register refuses (checker finding on purpose)");
