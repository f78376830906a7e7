// SPDX-License-Identifier: GPL-2.0
/*
 * demo_irq: a platform driver bound through the device tree to the bundled demo
 * device (models/demo.toml, "mmiolab,demo"), a device described in TOML. Its probe
 * runs the tests: the ID register, a read-to-clear status bit, and its two
 * interrupt lines: a job started by CTRL.GO completes 50 us later (a delayed
 * effect), sets STATUS.DONE and raises the level-triggered line 0 until the
 * handler acknowledges by writing 1 to DONE: exactly one interrupt per job, none
 * after; a write to SOFTIRQ pulses the edge-triggered line 1 once.
 *
 * The outcome is in /sys/module/demo_irq/parameters/result, as for platform_dt.
 */
#include <linux/atomic.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/irq.h>
#include <linux/jiffies.h>
#include <linux/mod_devicetable.h>
#include <linux/module.h>
#include <linux/platform_device.h>

#include "mmiolab-test.h"

static char result[16] = "not-probed";
module_param_string(result, result, sizeof(result), 0444);
MODULE_PARM_DESC(result, "test outcome: pass, fail or not-probed (read-only)");

static struct {
	struct platform_device *pdev;
	void __iomem *base;
	int level_irq, edge_irq;
	atomic_t level_hits, edge_hits;
	u32 status_in_handler;
	struct completion level_seen, edge_seen;
} t;

static irqreturn_t on_level(int irq, void *data)
{
	u32 status = readl(t.base + MMIOLAB_DEMO_STATUS_OFFSET);

	if (!(status & MMIOLAB_DEMO_STATUS_DONE_MASK))
		return IRQ_NONE;	/* counted by the kernel as spurious, not here */
	t.status_in_handler = status;
	writel(MMIOLAB_DEMO_STATUS_DONE_MASK, t.base + MMIOLAB_DEMO_STATUS_OFFSET);
	atomic_inc(&t.level_hits);
	complete(&t.level_seen);
	return IRQ_HANDLED;
}

static irqreturn_t on_edge(int irq, void *data)
{
	atomic_inc(&t.edge_hits);
	complete(&t.edge_seen);
	return IRQ_HANDLED;
}

static enum mmiolab_result t_map(void)
{
	struct resource *res = platform_get_resource(t.pdev, IORESOURCE_MEM, 0);
	void __iomem *base;

	if (!res)
		return MMIOLAB_FATAL;
	base = devm_ioremap_resource(&t.pdev->dev, res);
	if (IS_ERR(base)) {
		printk(KERN_INFO "    # devm_ioremap_resource: %pe\n", base);
		return MMIOLAB_FATAL;
	}
	t.base = base;
	return mmiolab_verdict(MMIOLAB_CHECK("resource start", res->start, MMIOLAB_DEMO_BASE));
}

static enum mmiolab_result t_id(void)
{
	return mmiolab_verdict(MMIOLAB_CHECK("ID", readl(t.base + MMIOLAB_DEMO_ID_OFFSET),
					    MMIOLAB_DEMO_ID_RESET));
}

/* STATUS.POR reads 1 once after reset, then 0. */
static enum mmiolab_result t_read_to_clear(void)
{
	u32 first = readl(t.base + MMIOLAB_DEMO_STATUS_OFFSET);
	u32 second = readl(t.base + MMIOLAB_DEMO_STATUS_OFFSET);

	return mmiolab_verdict(MMIOLAB_CHECK("POR, first read", first & MMIOLAB_DEMO_STATUS_POR_MASK,
					    MMIOLAB_DEMO_STATUS_POR_MASK) &&
			      MMIOLAB_CHECK("POR, second read", second & MMIOLAB_DEMO_STATUS_POR_MASK, 0));
}

static enum mmiolab_result t_request_irqs(void)
{
	int err;

	t.level_irq = platform_get_irq(t.pdev, MMIOLAB_DEMO_DONE_LINE);
	t.edge_irq = platform_get_irq(t.pdev, MMIOLAB_DEMO_SOFT_LINE);
	if (t.level_irq <= 0 || t.edge_irq <= 0) {
		printk(KERN_INFO "    # platform_get_irq: %d, %d\n", t.level_irq, t.edge_irq);
		return MMIOLAB_FATAL;
	}
	init_completion(&t.level_seen);
	init_completion(&t.edge_seen);
	err = devm_request_irq(&t.pdev->dev, t.level_irq, on_level, 0, "demo-done", NULL);
	if (!err)
		err = devm_request_irq(&t.pdev->dev, t.edge_irq, on_edge, 0, "demo-soft", NULL);
	if (err) {
		printk(KERN_INFO "    # devm_request_irq: %d\n", err);
		return MMIOLAB_FATAL;
	}
	/* The IOAPIC set each pin up as the device tree's interrupt type cell says. */
	return mmiolab_verdict(MMIOLAB_CHECK("line 0 is level-triggered",
					    irqd_is_level_type(irq_get_irq_data(t.level_irq)), 1) &&
			      MMIOLAB_CHECK("line 1 is edge-triggered",
					    irqd_is_level_type(irq_get_irq_data(t.edge_irq)), 0));
}

static enum mmiolab_result t_no_spurious_irq(void)
{
	msleep(20);
	return mmiolab_verdict(MMIOLAB_CHECK("level interrupts", atomic_read(&t.level_hits), 0) &&
			      MMIOLAB_CHECK("edge interrupts", atomic_read(&t.edge_hits), 0));
}

/* Start a job with its interrupt enabled; the handler must run once, and only once. */
static enum mmiolab_result job(int want)
{
	reinit_completion(&t.level_seen);
	writel(MMIOLAB_DEMO_CTRL_GO_MASK | MMIOLAB_DEMO_CTRL_IE_MASK,
	       t.base + MMIOLAB_DEMO_CTRL_OFFSET);
	if (!wait_for_completion_timeout(&t.level_seen, msecs_to_jiffies(2000))) {
		printk(KERN_INFO "    # no interrupt within 2 s of CTRL.GO\n");
		return MMIOLAB_FAIL;
	}
	msleep(50);
	return mmiolab_verdict(MMIOLAB_CHECK("DONE seen by the handler",
					    t.status_in_handler & MMIOLAB_DEMO_STATUS_DONE_MASK,
					    MMIOLAB_DEMO_STATUS_DONE_MASK) &&
			      MMIOLAB_CHECK("level interrupts", atomic_read(&t.level_hits), want) &&
			      MMIOLAB_CHECK("DONE after the acknowledge",
					    readl(t.base + MMIOLAB_DEMO_STATUS_OFFSET) &
						    MMIOLAB_DEMO_STATUS_DONE_MASK, 0));
}

static enum mmiolab_result t_level_once(void)
{
	return job(1);
}

static enum mmiolab_result t_level_again(void)
{
	return job(2);
}

static enum mmiolab_result t_edge_once(void)
{
	reinit_completion(&t.edge_seen);
	writel(1, t.base + MMIOLAB_DEMO_SOFTIRQ_OFFSET);
	if (!wait_for_completion_timeout(&t.edge_seen, msecs_to_jiffies(2000))) {
		printk(KERN_INFO "    # no interrupt within 2 s of the SOFTIRQ write\n");
		return MMIOLAB_FAIL;
	}
	msleep(50);
	return mmiolab_verdict(MMIOLAB_CHECK("edge interrupts", atomic_read(&t.edge_hits), 1) &&
			      MMIOLAB_CHECK("level interrupts", atomic_read(&t.level_hits), 2));
}

static const struct mmiolab_case cases[] = {
	{ "devm_ioremap_resource", t_map },
	{ "id_register", t_id },
	{ "read_to_clear_status_bit", t_read_to_clear },
	{ "request_level_and_edge_irqs", t_request_irqs },
	{ "no_interrupt_before_a_job", t_no_spurious_irq },
	{ "delayed_completion_raises_one_level_interrupt", t_level_once },
	{ "second_job_raises_exactly_one_more", t_level_again },
	{ "softirq_pulses_one_edge_interrupt", t_edge_once },
};

static int demo_probe(struct platform_device *pdev)
{
	unsigned int failed;

	if (t.pdev)
		return -EBUSY;
	t.pdev = pdev;
	failed = mmiolab_run_cases(cases, ARRAY_SIZE(cases));
	strscpy(result, failed ? "fail" : "pass", sizeof(result));
	if (!t.base) {
		t.pdev = NULL;
		return -ENODEV;
	}
	return 0;
}

static int demo_remove(struct platform_device *pdev)
{
	t.pdev = NULL;
	t.base = NULL;
	return 0;
}

static const struct of_device_id demo_of_match[] = {
	{ .compatible = MMIOLAB_DEMO_COMPAT },
	{ }
};
MODULE_DEVICE_TABLE(of, demo_of_match);

static struct platform_driver demo_driver = {
	.probe = demo_probe,
	.remove = demo_remove,
	.driver = {
		.name = "mmiolab-demo",
		.of_match_table = demo_of_match,
	},
};
module_platform_driver(demo_driver);

MODULE_DESCRIPTION("mmiolab: platform driver for the described demo device");
MODULE_LICENSE("GPL");
