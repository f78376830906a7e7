// SPDX-License-Identifier: GPL-2.0
/*
 * rule_fifo_empty: pops apidev's FIFO sq (SDATA) while it is empty, which its description
 * forbids (read-empty-fifo, mmiolab-rules.h).
 */
#include "mmiolab-rules.h"

static enum mmiolab_result pop_empty(void)
{
	return mmiolab_verdict(MMIOLAB_CHECK("readl(SDATA) of the empty FIFO",
					     readl(regs + MMIOLAB_APIDEV_SDATA_OFFSET),
					     0xeeeeeeeeU));
}

MMIOLAB_RULE_TEST("read-empty-fifo apidev.SDATA", pop_empty);
MODULE_DESCRIPTION("mmiolab: pops an empty FIFO (checker finding on purpose)");
