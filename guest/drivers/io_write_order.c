// SPDX-License-Identifier: GPL-2.0
/*
 * io_write_order: a driver writes register ORDER_A, then wmb(), then ORDER_B, of the
 * described device apidev, several times with distinct values (writel_relaxed: the
 * relaxed forms are the ones that need the barrier to keep their order on weakly ordered
 * machines). The guest checks that both registers hold the last values written; the
 * order the device saw is checked on the host, in mmiolab's trace: the driver prints the
 * writes it made, in program order, on one line
 *
 *     # mmiolab-trace-order: apidev ORDER_A=0x... ORDER_B=0x... ...
 *
 * and `mmiolab test --trace FILE` requires those writes to appear in the trace in that
 * order ("host: trace order of io_write_order").
 *
 * On x86, uncached MMIO stores are not reordered with each other and every trapped store
 * is a synchronous VM exit, so here the order is program order with or without wmb(); what
 * the test shows is that the trace records the device's accesses in the order the driver
 * made them, which is what a user of the trace relies on.
 */
#include <linux/kernel.h>

#include "mmiolab-bound.h"

#define ROUNDS 4

static enum mmiolab_result t_write_a_wmb_b(void)
{
	char line[256];
	int len, i;
	bool ok;

	len = scnprintf(line, sizeof(line), "mmiolab-trace-order: apidev");
	for (i = 0; i < ROUNDS; i++) {
		u32 a = 0xa0000000 | i << 8 | 0x0a, b = 0xb0000000 | i << 8 | 0x0b;

		writel_relaxed(a, reg(MMIOLAB_APIDEV_ORDER_A_OFFSET));
		wmb();
		writel_relaxed(b, reg(MMIOLAB_APIDEV_ORDER_B_OFFSET));
		wmb();
		len += scnprintf(line + len, sizeof(line) - len, " ORDER_A=%#x ORDER_B=%#x", a, b);
	}
	ok = MMIOLAB_CHECK("ORDER_A holds the last value", readl(reg(MMIOLAB_APIDEV_ORDER_A_OFFSET)),
			   0xa0000000 | (ROUNDS - 1) << 8 | 0x0a);
	ok = MMIOLAB_CHECK("ORDER_B holds the last value", readl(reg(MMIOLAB_APIDEV_ORDER_B_OFFSET)),
			   0xb0000000 | (ROUNDS - 1) << 8 | 0x0b) && ok;
	printk(KERN_INFO "    # %s\n", line);
	return mmiolab_verdict(ok);
}

static const struct mmiolab_case cases[] = {
	{ "writel_relaxed_a_wmb_b", t_write_a_wmb_b },
};

MMIOLAB_BOUND_DRIVER("mmiolab-io-write-order", MMIOLAB_APIDEV_COMPAT, MMIOLAB_APIDEV_BASE,
		     cases, false);

MODULE_DESCRIPTION("mmiolab: two writes separated by wmb(), checked in the host's trace");
MODULE_LICENSE("GPL");
