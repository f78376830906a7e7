// SPDX-License-Identifier: GPL-2.0
/*
 * described_demo: a platform driver bound through the device tree to the bundled demo
 * device (models/demo.toml, "mmiolab,demo"), a device described in TOML. Its probe
 * runs the tests: the ID register, a read-to-clear status bit, and its two
 * interrupt lines: a job started by CTRL.GO completes 50 us later (a delayed
 * effect), sets STATUS.DONE and raises the level-triggered line 0 until the
 * handler acknowledges by writing 1 to DONE: exactly one interrupt per job, none
 * after; a write to SOFTIRQ pulses the edge-triggered line 1 once. Then the I/O
 * memory accessors on the device's side effects: ioread8/16/32 and readq with a
 * width policy, a read-only/write-only split, a banked view, write-once fields,
 * the _rep forms on its FIFO (order, level, overflow and underflow flags) and
 * memcpy_toio/memcpy_fromio/memset_io on its trapped RAM window, and the same registers
 * through the device's I/O-port mapping (request_region, ioport_map, inl, inb).
 *
 * The outcome is in /sys/module/described_demo/parameters/result, as for platform_dt.
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
#include <linux/string.h>

#include "mmiolab-cases-driver.h"

/* STATUS bits 31:24: reserved, read as ones (reserved_read in models/demo.toml) */
#define DEMO_STATUS_RESERVED	0xff000000U

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
	/* write 1 to DONE, the reserved bits as they read (the checker's reserved-bits rule) */
	writel(MMIOLAB_DEMO_STATUS_DONE_MASK | (status & DEMO_STATUS_RESERVED),
	       t.base + MMIOLAB_DEMO_STATUS_OFFSET);
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

static void __iomem *reg(unsigned int offset)
{
	return t.base + offset;
}

/* ID takes only 32-bit reads (widths = [32]): a byte or a half-word read is refused with
 * all ones, a 32-bit one answers. */
static enum mmiolab_result t_width_policy(void)
{
	return mmiolab_verdict(MMIOLAB_CHECK("ioread32(ID)", ioread32(reg(MMIOLAB_DEMO_ID_OFFSET)),
					    MMIOLAB_DEMO_ID_RESET) &&
			      MMIOLAB_CHECK("ioread8(ID)", ioread8(reg(MMIOLAB_DEMO_ID_OFFSET)), 0xff) &&
			      MMIOLAB_CHECK("ioread16(ID)", ioread16(reg(MMIOLAB_DEMO_ID_OFFSET)), 0xffff) &&
			      MMIOLAB_CHECK("readl_relaxed(ID)", readl_relaxed(reg(MMIOLAB_DEMO_ID_OFFSET)),
					    MMIOLAB_DEMO_ID_RESET));
}

/* CSUM (read-only) and CSUM_IN (write-only) share an offset: writes add up. */
static enum mmiolab_result t_read_only_write_only_split(void)
{
	u32 before = ioread32(reg(MMIOLAB_DEMO_CSUM_OFFSET));

	iowrite32(5, reg(MMIOLAB_DEMO_CSUM_IN_OFFSET));
	writel_relaxed(7, reg(MMIOLAB_DEMO_CSUM_IN_OFFSET));
	return mmiolab_verdict(MMIOLAB_CHECK("CSUM", ioread32(reg(MMIOLAB_DEMO_CSUM_OFFSET)),
					    before + 12));
}

/* WIN_A and WIN_B share an offset; CTRL.BANK picks which one answers. */
static enum mmiolab_result t_banked_view(void)
{
	bool ok;

	iowrite32(0xaaaa5555, reg(MMIOLAB_DEMO_WIN_A_OFFSET));
	iowrite32(MMIOLAB_DEMO_CTRL_BANK_MASK, reg(MMIOLAB_DEMO_CTRL_OFFSET));
	iowrite16(0x1234, reg(MMIOLAB_DEMO_WIN_B_OFFSET));
	ok = MMIOLAB_CHECK("WIN_B", ioread32(reg(MMIOLAB_DEMO_WIN_B_OFFSET)), 0x1234);
	iowrite32(0, reg(MMIOLAB_DEMO_CTRL_OFFSET));
	return mmiolab_verdict(ok && MMIOLAB_CHECK("WIN_A", ioread32(reg(MMIOLAB_DEMO_WIN_A_OFFSET)),
						  0xaaaa5555));
}

/* SETUP's fields take their first write only. */
static enum mmiolab_result t_write_once(void)
{
	iowrite8(0x42, reg(MMIOLAB_DEMO_SETUP_OFFSET));
	iowrite8(0x99, reg(MMIOLAB_DEMO_SETUP_OFFSET));
	return mmiolab_verdict(MMIOLAB_CHECK("SETUP.ADDR", ioread8(reg(MMIOLAB_DEMO_SETUP_OFFSET)), 0x42));
}

/* iowrite32_rep fills the queue in order, one more overflows; ioread32_rep drains it in
 * order, one more underflows. */
static enum mmiolab_result t_rep_on_a_fifo(void)
{
	u32 in[MMIOLAB_DEMO_QUEUE_DEPTH + 1], out[MMIOLAB_DEMO_QUEUE_DEPTH + 1];
	u32 full, empty;
	bool ok = true;
	int i;

	iowrite32(MMIOLAB_DEMO_QSTAT_FLUSH_MASK | MMIOLAB_DEMO_QSTAT_OVF_MASK | MMIOLAB_DEMO_QSTAT_UDF_MASK,
		  reg(MMIOLAB_DEMO_QSTAT_OFFSET));
	for (i = 0; i < ARRAY_SIZE(in); i++)
		in[i] = 0x1000 + i;
	iowrite32_rep(reg(MMIOLAB_DEMO_QDATA_OFFSET), in, ARRAY_SIZE(in));
	full = ioread32(reg(MMIOLAB_DEMO_QSTAT_OFFSET));
	ioread32_rep(reg(MMIOLAB_DEMO_QDATA_OFFSET), out, ARRAY_SIZE(out));
	empty = ioread32(reg(MMIOLAB_DEMO_QSTAT_OFFSET));
	for (i = 0; i < MMIOLAB_DEMO_QUEUE_DEPTH; i++)
		ok &= MMIOLAB_CHECK("element in order", out[i], in[i]);
	return mmiolab_verdict(ok &&
			      MMIOLAB_CHECK("level when full", full & MMIOLAB_DEMO_QSTAT_LEVEL_MASK,
					    MMIOLAB_DEMO_QUEUE_DEPTH) &&
			      MMIOLAB_CHECK("FULL and OVF", full & (MMIOLAB_DEMO_QSTAT_FULL_MASK | MMIOLAB_DEMO_QSTAT_OVF_MASK),
					    MMIOLAB_DEMO_QSTAT_FULL_MASK | MMIOLAB_DEMO_QSTAT_OVF_MASK) &&
			      MMIOLAB_CHECK("EMPTY and UDF after draining one too many",
					    empty & (MMIOLAB_DEMO_QSTAT_EMPTY_MASK | MMIOLAB_DEMO_QSTAT_UDF_MASK),
					    MMIOLAB_DEMO_QSTAT_EMPTY_MASK | MMIOLAB_DEMO_QSTAT_UDF_MASK));
}

/* The trapped RAM window: memset_io, memcpy_toio, memcpy_fromio and readq. */
static enum mmiolab_result t_memcpy_on_a_ram_window(void)
{
	u8 pattern[MMIOLAB_DEMO_SRAM_SIZE / 2], back[MMIOLAB_DEMO_SRAM_SIZE / 2];
	void __iomem *sram = reg(MMIOLAB_DEMO_SRAM_OFFSET);
	int i;

	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = i * 7 + 3;
	memset_io(sram, 0xa5, MMIOLAB_DEMO_SRAM_SIZE);
	memcpy_toio(sram + 1, pattern, sizeof(pattern));	/* unaligned on purpose */
	memcpy_fromio(back, sram + 1, sizeof(back));
	return mmiolab_verdict(MMIOLAB_CHECK("memcpy round trip", memcmp(back, pattern, sizeof(back)), 0) &&
			      MMIOLAB_CHECK("memset_io beyond the copy",
					    readq(sram + MMIOLAB_DEMO_SRAM_SIZE - 8), 0xa5a5a5a5a5a5a5a5ULL) &&
			      MMIOLAB_CHECK("byte before the copy", ioread8(sram), 0xa5));
}

/* The same registers through the I/O-port mapping: request_region, ioport_map + ioread32,
 * inl; a write through a port is seen through MMIO. */
static enum mmiolab_result t_ioport_map_same_registers(void)
{
	void __iomem *ports;

	if (!devm_request_region(&t.pdev->dev, MMIOLAB_DEMO_PIO_BASE, MMIOLAB_DEMO_PIO_SIZE,
				 dev_name(&t.pdev->dev))) {
		printk(KERN_INFO "    # request_region(%#lx) failed\n", (unsigned long)MMIOLAB_DEMO_PIO_BASE);
		return MMIOLAB_FAIL;
	}
	ports = devm_ioport_map(&t.pdev->dev, MMIOLAB_DEMO_PIO_BASE, MMIOLAB_DEMO_PIO_SIZE);
	if (!ports)
		return MMIOLAB_FAIL;
	iowrite32(0x5a5a0001, ports + MMIOLAB_DEMO_WIN_A_OFFSET);
	return mmiolab_verdict(MMIOLAB_CHECK("ioread32(ioport_map + ID)",
					    ioread32(ports + MMIOLAB_DEMO_ID_OFFSET), MMIOLAB_DEMO_ID_RESET) &&
			      MMIOLAB_CHECK("inl(ID)", inl(MMIOLAB_DEMO_PIO_BASE + MMIOLAB_DEMO_ID_OFFSET),
					    MMIOLAB_DEMO_ID_RESET) &&
			      MMIOLAB_CHECK("inb(ID): refused by ID's width policy",
					    inb(MMIOLAB_DEMO_PIO_BASE + MMIOLAB_DEMO_ID_OFFSET), 0xff) &&
			      MMIOLAB_CHECK("WIN_A written through a port, read through MMIO",
					    readl(reg(MMIOLAB_DEMO_WIN_A_OFFSET)), 0x5a5a0001));
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
	{ "ioread_widths_and_width_policy", t_width_policy },
	{ "read_only_write_only_split", t_read_only_write_only_split },
	{ "banked_view", t_banked_view },
	{ "write_once_field", t_write_once },
	{ "rep_accessors_on_a_fifo", t_rep_on_a_fifo },
	{ "memcpy_io_on_a_ram_window", t_memcpy_on_a_ram_window },
	{ "ioport_map_sees_the_same_registers", t_ioport_map_same_registers },
};

MMIOLAB_CASES_DRIVER("mmiolab-demo", MMIOLAB_DEMO_COMPAT);

MODULE_DESCRIPTION("mmiolab: platform driver for the described demo device");
MODULE_LICENSE("GPL");
