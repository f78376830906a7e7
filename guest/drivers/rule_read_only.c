// SPDX-License-Identifier: GPL-2.0
/* rule_read_only: writes apidev's read-only ID (write-read-only, mmiolab-rules.h). */
#include "mmiolab-rules.h"

static enum mmiolab_result write_id(void)
{
	writel(0x12345678, regs + MMIOLAB_APIDEV_ID_OFFSET);
	/* the device dropped the write */
	return mmiolab_verdict(MMIOLAB_CHECK("readl(ID) after the write",
					     readl(regs + MMIOLAB_APIDEV_ID_OFFSET),
					     MMIOLAB_APIDEV_ID_RESET));
}

MMIOLAB_RULE_TEST("write-read-only apidev.ID", write_id);
MODULE_DESCRIPTION("mmiolab: writes a read-only register (checker finding on purpose)");
