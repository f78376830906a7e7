// SPDX-License-Identifier: GPL-2.0
/* rule_write_only: reads apidev's write-only RAISE (read-write-only, mmiolab-rules.h). */
#include "mmiolab-rules.h"

static enum mmiolab_result read_raise(void)
{
	/* nothing comes back from a write-only register: the read returns 0 */
	return mmiolab_verdict(MMIOLAB_CHECK("readl(RAISE)",
					     readl(regs + MMIOLAB_APIDEV_RAISE_OFFSET), 0));
}

MMIOLAB_RULE_TEST("read-write-only apidev.RAISE", read_raise);
MODULE_DESCRIPTION("mmiolab: reads a write-only register (checker finding on purpose)");
