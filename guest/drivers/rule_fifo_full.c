// SPDX-License-Identifier: GPL-2.0
/*
 * rule_fifo_full: pushes three words onto apidev's two-word FIFO sq (SDATA), which its
 * description forbids when full (write-full-fifo, mmiolab-rules.h), then pops the two it
 * kept, leaving it empty.
 */
#include "mmiolab-rules.h"

static enum mmiolab_result push_full(void)
{
	bool ok;

	writel(1, regs + MMIOLAB_APIDEV_SDATA_OFFSET);
	writel(2, regs + MMIOLAB_APIDEV_SDATA_OFFSET);
	writel(3, regs + MMIOLAB_APIDEV_SDATA_OFFSET);
	ok = MMIOLAB_CHECK("first pop", readl(regs + MMIOLAB_APIDEV_SDATA_OFFSET), 1);
	ok &= MMIOLAB_CHECK("second pop", readl(regs + MMIOLAB_APIDEV_SDATA_OFFSET), 2);
	return mmiolab_verdict(ok);
}

MMIOLAB_RULE_TEST("write-full-fifo apidev.SDATA", push_full);
MODULE_DESCRIPTION("mmiolab: pushes onto a full FIFO (checker finding on purpose)");
