// SPDX-License-Identifier: GPL-2.0
/*
 * rule_irq_stuck: an interrupt handler that returns without clearing its condition
 * (irq-stuck, mmiolab-rules.h). It enables apidev's level interrupt `pend` (IRQ.EN), sets
 * IRQ.PEND through IRQSET, and its handler never clears PEND: the IOAPIC delivers the
 * still-asserted line again after each EOI. After STUCK_CALLS calls the handler disables
 * the interrupt (a stand-in for Linux's own "nobody cared" that would take 100,000); the
 * case then clears PEND, as the handler should have, and frees the interrupt.
 *
 * The host learns of the EOIs on its event loop, some time after they happen, and judges
 * them by the line's level then (docs/checker.md, "Limits"): the case sleeps before the
 * clearing write, the vCPU idles, and the event loop has read them while the line is still
 * asserted, the claim held and the test running.
 */
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/of.h>
#include <linux/of_irq.h>

#include "mmiolab-rules.h"

/* more than the checker's default limit of 3 EOIs in a row ([device.check] irq_stuck_after) */
#define STUCK_CALLS 5

static atomic_t calls = ATOMIC_INIT(0);
static DECLARE_COMPLETION(stuck);

static irqreturn_t forgetful_handler(int irq, void *dev)
{
	/* the bug on purpose: IRQ.PEND is not written back */
	if (atomic_inc_return(&calls) == STUCK_CALLS) {
		disable_irq_nosync(irq);
		complete(&stuck);
	}
	return IRQ_HANDLED;
}

static enum mmiolab_result handler_never_clears(void)
{
	struct device_node *np;
	unsigned int irq;
	bool ok;

	np = of_find_compatible_node(NULL, NULL, MMIOLAB_APIDEV_COMPAT);
	irq = np ? irq_of_parse_and_map(np, 0) : 0;
	of_node_put(np);
	if (!irq) {
		printk(KERN_INFO "    # no interrupt for %s in the device tree\n", MMIOLAB_APIDEV_COMPAT);
		return MMIOLAB_FATAL;
	}
	if (request_irq(irq, forgetful_handler, 0, KBUILD_MODNAME, &calls))
		return MMIOLAB_FATAL;
	writel(MMIOLAB_APIDEV_IRQ_EN_MASK, regs + MMIOLAB_APIDEV_IRQ_OFFSET);
	writel(1, regs + MMIOLAB_APIDEV_IRQSET_OFFSET);
	ok = MMIOLAB_CHECK("handler calls before the timeout",
			   wait_for_completion_timeout(&stuck, 10 * HZ) ? STUCK_CALLS : 0,
			   STUCK_CALLS);
	msleep(100);
	/* what the handler should have done, then the interrupt disabled at the device */
	writel(MMIOLAB_APIDEV_IRQ_PEND_MASK, regs + MMIOLAB_APIDEV_IRQ_OFFSET);
	free_irq(irq, &calls);
	return mmiolab_verdict(ok);
}

MMIOLAB_RULE_TEST("irq-stuck apidev", handler_never_clears);
MODULE_DESCRIPTION("mmiolab: a level interrupt handler that never clears (checker finding on purpose)");
