// SPDX-License-Identifier: GPL-2.0
/*
 * short: in the spirit of LDD3's `short` (chapters 9 and 10), port I/O on the PC parallel
 * port at 0x378 (models/parport.toml, wired as the LDD3 loopback plug: data bit 7 drives
 * nACK). request_region(0x378, 8) under the host's device name; the data latch written
 * with outb, outb_p and outsb and read back with inb, inb_p and insb; the status
 * register's fixed bits (a selected printer with paper, no error, not busy; unused bits 2:0
 * read 1) and nACK following data bit 7; the control register (bits 7:6 read 1); the PS/2
 * direction bit (the data lines turned around float high); ioport_map + ioread8/iowrite8
 * on the same ports; and the loopback interrupt: with CONTROL.IRQEN set, each 0->1 change of
 * data bit 7 raises one interrupt on legacy IRQ 7 (the 8259A), none without IRQEN.
 *
 * A plain module (no device-tree node, as on a PC): its init runs the cases and keeps the
 * region only if all passed (so /init can see it in /proc/ioports); its exit releases it.
 * parport_pc may be loaded on the same ports after it is removed.
 */
#include <linux/atomic.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "mmiolab-test.h"

#define SHORT_NAME	"short"		/* the device's name in the host's tree */
#define BASE		MMIOLAB_SHORT_PIO_BASE
#define NR_PORTS	MMIOLAB_SHORT_PIO_SIZE
#define DATA		(BASE + MMIOLAB_SHORT_DATA_OFFSET)
#define STATUS		(BASE + MMIOLAB_SHORT_STATUS_OFFSET)
#define CONTROL		(BASE + MMIOLAB_SHORT_CONTROL_OFFSET)

/* The status lines the model holds fixed, and its unused bits 2:0, which read 1. */
#define STATUS_UNUSED	0x07
#define STATUS_FIXED	(MMIOLAB_SHORT_STATUS_BUSY_MASK | MMIOLAB_SHORT_STATUS_SELECT_MASK | \
			 MMIOLAB_SHORT_STATUS_NERROR_MASK | STATUS_UNUSED)
#define NACK		MMIOLAB_SHORT_STATUS_NACK_MASK
/* Control bits 7:6 are unused and read 1. */
#define CONTROL_UNUSED	0xc0
#define CONTROL_RESET	MMIOLAB_SHORT_CONTROL_RESET
#define IRQEN		MMIOLAB_SHORT_CONTROL_IRQEN_MASK
#define DIR		MMIOLAB_SHORT_CONTROL_DIR_MASK

static struct resource *region;
static void __iomem *map;
static bool irq_requested;
static atomic_t irq_count = ATOMIC_INIT(0);
static DECLARE_COMPLETION(irq_seen);

static enum mmiolab_result t_request_region(void)
{
	struct resource *again;

	region = request_region(BASE, NR_PORTS, SHORT_NAME);
	if (!region) {
		printk(KERN_INFO "    # request_region(%#x, %d) failed: the ports are taken\n", BASE,
		       NR_PORTS);
		return MMIOLAB_FATAL;
	}
	again = request_region(DATA, 1, SHORT_NAME "-again");
	if (again) {
		release_region(DATA, 1);
		printk(KERN_INFO "    # a second request of port %#x succeeded\n", DATA);
		return MMIOLAB_FAIL;
	}
	return MMIOLAB_PASS;
}

/* The data latch reads back what was written (CONTROL.DIR = 0). */
static enum mmiolab_result t_data_latch(void)
{
	static const u8 values[] = { 0x00, 0x55, 0xaa, 0xff, 0x5a };
	bool ok = true;
	int i;

	for (i = 0; i < ARRAY_SIZE(values); i++) {
		outb(values[i], DATA);
		ok = MMIOLAB_CHECK("inb(DATA) after outb", inb(DATA), values[i]) && ok;
	}
	outb_p(0x3c, DATA);
	ok = MMIOLAB_CHECK("inb_p(DATA) after outb_p", inb_p(DATA), 0x3c) && ok;
	return mmiolab_verdict(ok);
}

/* Status: the fixed lines, the unused bits, and nACK = data bit 7 (the loopback plug). */
static enum mmiolab_result t_status(void)
{
	bool ok;

	outb(0x00, DATA);
	ok = MMIOLAB_CHECK("STATUS with D7 = 0", inb(STATUS), STATUS_FIXED);
	outb(0x80, DATA);
	ok = MMIOLAB_CHECK("STATUS with D7 = 1: nACK high", inb(STATUS), STATUS_FIXED | NACK) && ok;
	outb(0x00, STATUS);	/* read-only: ignored */
	ok = MMIOLAB_CHECK("STATUS after a write to it", inb(STATUS), STATUS_FIXED | NACK) && ok;
	outb(0x7f, DATA);
	ok = MMIOLAB_CHECK("STATUS with D7 = 0 again", inb(STATUS), STATUS_FIXED) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_control(void)
{
	bool ok;

	ok = MMIOLAB_CHECK("CONTROL at reset (bits 7:6 read 1)", inb(CONTROL),
			   CONTROL_UNUSED | CONTROL_RESET);
	outb(0x05, CONTROL);
	ok = MMIOLAB_CHECK("CONTROL after outb(0x05)", inb(CONTROL), CONTROL_UNUSED | 0x05) && ok;
	outb(CONTROL_RESET, CONTROL);
	return mmiolab_verdict(ok);
}

/* CONTROL.DIR turns the data lines around: nothing drives them, they read 0xff and nACK
 * floats high; the latch keeps its value and reads back once DIR is cleared. */
static enum mmiolab_result t_ps2_direction(void)
{
	bool ok;

	outb(0x12, DATA);
	outb(CONTROL_RESET | DIR, CONTROL);
	ok = MMIOLAB_CHECK("DATA in input mode", inb(DATA), 0xff);
	ok = MMIOLAB_CHECK("nACK in input mode", inb(STATUS) & NACK, NACK) && ok;
	outb(CONTROL_RESET, CONTROL);
	ok = MMIOLAB_CHECK("DATA latch after input mode", inb(DATA), 0x12) && ok;
	return mmiolab_verdict(ok);
}

/* LDD3 short's string mode: outsb writes every byte to the one port, the latch keeps the
 * last; insb reads the port that many times. */
static enum mmiolab_result t_string_forms(void)
{
	static const u8 in[4] = { 0x21, 0x43, 0x65, 0x87 };
	u8 out[4] = { 0 };
	bool ok = true;
	int i;

	outsb(DATA, in, sizeof(in));
	insb(DATA, out, sizeof(out));
	for (i = 0; i < sizeof(out); i++)
		ok = MMIOLAB_CHECK("insb after outsb: the last byte written", out[i], in[3]) && ok;
	ok = MMIOLAB_CHECK("nACK follows bit 7 of the last byte", inb(STATUS) & NACK, NACK) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_ioport_map(void)
{
	bool ok;

	map = ioport_map(BASE, NR_PORTS);
	if (!map) {
		printk(KERN_INFO "    # ioport_map(%#x) failed\n", BASE);
		return MMIOLAB_FAIL;
	}
	iowrite8(0x69, map + MMIOLAB_SHORT_DATA_OFFSET);
	ok = MMIOLAB_CHECK("inb(DATA) after iowrite8", inb(DATA), 0x69);
	ok = MMIOLAB_CHECK("ioread8(STATUS) vs inb", ioread8(map + MMIOLAB_SHORT_STATUS_OFFSET),
			   inb(STATUS)) && ok;
	ok = MMIOLAB_CHECK("ioread8(CONTROL)", ioread8(map + MMIOLAB_SHORT_CONTROL_OFFSET),
			   CONTROL_UNUSED | CONTROL_RESET) && ok;
	ioport_unmap(map);
	map = NULL;
	return mmiolab_verdict(ok);
}

static irqreturn_t short_interrupt(int irq, void *dev_id)
{
	atomic_inc(&irq_count);
	complete(&irq_seen);
	return IRQ_HANDLED;
}

/* Write @value to DATA; with @want_irq, wait up to 2 s for the interrupt. */
static bool edge(u8 value, bool want_irq, const char *what)
{
	reinit_completion(&irq_seen);
	outb(value, DATA);
	if (!want_irq)
		return true;
	if (wait_for_completion_timeout(&irq_seen, msecs_to_jiffies(2000)))
		return true;
	printk(KERN_INFO "    # no interrupt within 2 s of %s\n", what);
	return false;
}

static enum mmiolab_result t_loopback_interrupt(void)
{
	bool ok;
	int err;

	outb(0x00, DATA);
	outb(CONTROL_RESET, CONTROL);
	err = request_irq(MMIOLAB_SHORT_IRQ, short_interrupt, 0, SHORT_NAME, &irq_count);
	if (err) {
		printk(KERN_INFO "    # request_irq(%d): %d\n", MMIOLAB_SHORT_IRQ, err);
		return MMIOLAB_FAIL;
	}
	irq_requested = true;
	msleep(20);
	ok = MMIOLAB_CHECK("interrupts before IRQEN", atomic_read(&irq_count), 0);
	/* Interrupts disabled: a rising D7 raises nothing. */
	edge(0x80, false, "");
	edge(0x00, false, "");
	msleep(20);
	ok = MMIOLAB_CHECK("interrupts while IRQEN is clear", atomic_read(&irq_count), 0) && ok;
	outb(CONTROL_RESET | IRQEN, CONTROL);
	ok = edge(0x80, true, "D7 0 -> 1") && ok;
	edge(0x81, false, "");		/* D7 stays 1: no edge */
	edge(0x01, false, "");		/* falling: no interrupt */
	ok = edge(0xff, true, "the second D7 0 -> 1") && ok;
	msleep(50);
	ok = MMIOLAB_CHECK("interrupts: one per rising D7", atomic_read(&irq_count), 2) && ok;
	outb(CONTROL_RESET, CONTROL);
	outb(0x00, DATA);
	free_irq(MMIOLAB_SHORT_IRQ, &irq_count);
	irq_requested = false;
	return mmiolab_verdict(ok);
}

static const struct mmiolab_case cases[] = {
	{ "request_region", t_request_region },
	{ "data_latch_outb_inb", t_data_latch },
	{ "status_fixed_bits_and_nack", t_status },
	{ "control_register", t_control },
	{ "ps2_direction_bit", t_ps2_direction },
	{ "outsb_insb", t_string_forms },
	{ "ioport_map_ioread8", t_ioport_map },
	{ "d7_to_nack_loopback_interrupt", t_loopback_interrupt },
};

static void short_release(void)
{
	if (irq_requested)
		free_irq(MMIOLAB_SHORT_IRQ, &irq_count);
	irq_requested = false;
	if (map)
		ioport_unmap(map);
	map = NULL;
	if (region)
		release_region(BASE, NR_PORTS);
	region = NULL;
}

static int __init short_init(void)
{
	unsigned int failed = mmiolab_run_cases(cases, ARRAY_SIZE(cases));

	if (failed) {
		short_release();
		return -EIO;
	}
	return 0;
}
module_init(short_init);

static void __exit short_exit(void)
{
	short_release();
}
module_exit(short_exit);

MODULE_DESCRIPTION("mmiolab: LDD3-style short on the parallel port at 0x378");
MODULE_LICENSE("GPL");
