// SPDX-License-Identifier: GPL-2.0
/*
 * platform_dt: a platform driver bound through the device tree to the
 * "mmiolab,testdev" regfile. Its probe runs the tests: the MEM resource,
 * devm_ioremap_resource (which claims the range under the device's name, see
 * /proc/iomem), the ID and SIZE registers, the interrupt from the DT and a
 * DOORBELL write that must raise it exactly once.
 *
 * The driver stays bound after the tests, so the module is not unloaded on
 * failure: the outcome is in /sys/module/platform_dt/parameters/result
 * ("pass", "fail", or "not-probed" if no device matched).
 */
#include <linux/atomic.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/jiffies.h>
#include <linux/mod_devicetable.h>
#include <linux/module.h>
#include <linux/platform_device.h>

#include "mmiolab-cases-driver.h"

/* One testdev per machine: the cases share this state. */
static struct {
	struct platform_device *pdev;
	struct resource *res;
	void __iomem *base;
	int irq;
	atomic_t irqs;
	struct completion irq_seen;
} t;

static irqreturn_t testdev_irq(int irq, void *data)
{
	atomic_inc(&t.irqs);
	complete(&t.irq_seen);
	return IRQ_HANDLED;
}

static enum mmiolab_result t_mem_resource(void)
{
	t.res = platform_get_resource(t.pdev, IORESOURCE_MEM, 0);
	if (!t.res)
		return MMIOLAB_FATAL;
	return mmiolab_verdict(MMIOLAB_CHECK("resource start", t.res->start, MMIOLAB_TESTDEV_BASE) &&
			      MMIOLAB_CHECK("resource size", resource_size(t.res),
					    MMIOLAB_TESTDEV_SIZE));
}

static enum mmiolab_result t_ioremap_resource(void)
{
	void __iomem *base = devm_ioremap_resource(&t.pdev->dev, t.res);

	if (IS_ERR(base)) {
		printk(KERN_INFO "    # devm_ioremap_resource: %pe\n", base);
		return MMIOLAB_FATAL;
	}
	t.base = base;
	return MMIOLAB_PASS;
}

static enum mmiolab_result t_id(void)
{
	return mmiolab_verdict(MMIOLAB_CHECK("ID", readl(t.base + MMIOLAB_REG_ID), MMIOLAB_ID));
}

static enum mmiolab_result t_size(void)
{
	return mmiolab_verdict(MMIOLAB_CHECK("SIZE", readl(t.base + MMIOLAB_REG_SIZE),
					    resource_size(t.res)));
}

static enum mmiolab_result t_storage(void)
{
	writel(0x600dcafe, t.base + 0x10);
	writeq(0xfedcba9876543210ULL, t.base + 0x18);
	return mmiolab_verdict(MMIOLAB_CHECK("readl", readl(t.base + 0x10), 0x600dcafe) &&
			      MMIOLAB_CHECK("readq", readq(t.base + 0x18), 0xfedcba9876543210ULL));
}

static enum mmiolab_result t_get_irq(void)
{
	t.irq = platform_get_irq(t.pdev, 0);
	if (t.irq <= 0) {
		printk(KERN_INFO "    # platform_get_irq: %d\n", t.irq);
		return MMIOLAB_FATAL;
	}
	return MMIOLAB_PASS;
}

static enum mmiolab_result t_request_irq(void)
{
	int err;

	atomic_set(&t.irqs, 0);
	init_completion(&t.irq_seen);
	err = devm_request_irq(&t.pdev->dev, t.irq, testdev_irq, 0,
			       dev_name(&t.pdev->dev), NULL);
	if (err) {
		printk(KERN_INFO "    # devm_request_irq(%d): %d\n", t.irq, err);
		return MMIOLAB_FATAL;
	}
	return MMIOLAB_PASS;
}

static enum mmiolab_result t_no_spurious_irq(void)
{
	msleep(20);
	return mmiolab_verdict(MMIOLAB_CHECK("interrupts before DOORBELL", atomic_read(&t.irqs), 0));
}

/* Ring the doorbell and wait up to 2 s for the handler; then it must stay at @want. */
static enum mmiolab_result ring(int want)
{
	reinit_completion(&t.irq_seen);
	writel(1, t.base + MMIOLAB_REG_DOORBELL);
	if (!wait_for_completion_timeout(&t.irq_seen, msecs_to_jiffies(2000))) {
		printk(KERN_INFO "    # no interrupt within 2 s of the DOORBELL write\n");
		return MMIOLAB_FAIL;
	}
	msleep(50);
	return mmiolab_verdict(MMIOLAB_CHECK("interrupt count", atomic_read(&t.irqs), want));
}

static enum mmiolab_result t_doorbell(void)
{
	return ring(1);
}

static enum mmiolab_result t_doorbell_again(void)
{
	return ring(2);
}

static const struct mmiolab_case cases[] = {
	{ "platform_get_resource_mem", t_mem_resource },
	{ "devm_ioremap_resource", t_ioremap_resource },
	{ "id_register", t_id },
	{ "size_register", t_size },
	{ "storage_round_trip", t_storage },
	{ "platform_get_irq", t_get_irq },
	{ "devm_request_irq", t_request_irq },
	{ "no_interrupt_before_doorbell", t_no_spurious_irq },
	{ "doorbell_raises_one_interrupt", t_doorbell },
	{ "doorbell_again_raises_another", t_doorbell_again },
};

MMIOLAB_CASES_DRIVER("mmiolab-testdev", MMIOLAB_TESTDEV_COMPAT);

MODULE_DESCRIPTION("mmiolab: platform driver for the DT testdev regfile");
MODULE_LICENSE("GPL");
