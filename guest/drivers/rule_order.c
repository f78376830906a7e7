// SPDX-License-Identifier: GPL-2.0
/*
 * rule_order: writes apidev's KICK while GATE.EN is clear, breaking the description's order
 * rule kick_needs_gate (order, mmiolab-rules.h); then does it right (gate open, KICK,
 * gate closed), which the rule accepts.
 */
#include "mmiolab-rules.h"

static enum mmiolab_result kick_without_gate(void)
{
	writel(1, regs + MMIOLAB_APIDEV_KICK_OFFSET);
	writel(MMIOLAB_APIDEV_GATE_EN_MASK, regs + MMIOLAB_APIDEV_GATE_OFFSET);
	writel(2, regs + MMIOLAB_APIDEV_KICK_OFFSET);
	writel(0, regs + MMIOLAB_APIDEV_GATE_OFFSET);
	return MMIOLAB_PASS;
}

MMIOLAB_RULE_TEST("order apidev.KICK", kick_without_gate);
MODULE_DESCRIPTION("mmiolab: breaks a register order rule (checker finding on purpose)");
