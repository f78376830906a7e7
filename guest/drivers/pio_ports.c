// SPDX-License-Identifier: GPL-2.0
/*
 * pio_ports: the port I/O API on the 8-port regfile at fixed ports 0x300 (device
 * pioregs, not in the device tree; the parallel port at 0x378 is short's):
 * request_region, inb/outb, inw/outw, inl/outl, the string forms insb/outsb,
 * ioport_map with ioread8/iowrite8 and their _rep forms, conflict detection,
 * and release.
 */
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "mmiolab-test.h"

#define NAME "mmiolab-pio"
#define PORT_ID		MMIOLAB_PIO_BASE
#define PORT_DATA	(MMIOLAB_PIO_BASE + MMIOLAB_PIO_STORAGE)	/* 0x37c..0x37f */

static struct resource *region;
static void __iomem *map;

static enum mmiolab_result t_request(void)
{
	region = request_region(MMIOLAB_PIO_BASE, MMIOLAB_PIO_SIZE, NAME);
	return region ? MMIOLAB_PASS : MMIOLAB_FATAL;
}

static enum mmiolab_result t_request_conflict(void)
{
	struct resource *again = request_region(MMIOLAB_PIO_BASE, MMIOLAB_PIO_SIZE, NAME "-again");

	if (!again)
		return MMIOLAB_PASS;
	release_resource(again);
	kfree(again);
	printk(KERN_INFO "    # a second request_region of the same ports succeeded\n");
	return MMIOLAB_FAIL;
}

static enum mmiolab_result t_id_inb(void)
{
	return mmiolab_verdict(MMIOLAB_CHECK("inb(ID)", inb(PORT_ID), MMIOLAB_ID & 0xff));
}

static enum mmiolab_result t_outb_inb(void)
{
	bool ok = true;
	int i;

	for (i = 0; i < 4; i++)
		outb(0xc0 + i, PORT_DATA + i);
	for (i = 0; i < 4; i++)
		ok = MMIOLAB_CHECK("inb", inb(PORT_DATA + i), 0xc0 + i) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_outw_inw(void)
{
	outw(0x1234, PORT_DATA);
	outw(0xabcd, PORT_DATA + 2);
	return mmiolab_verdict(MMIOLAB_CHECK("inw", inw(PORT_DATA), 0x1234) &&
			      MMIOLAB_CHECK("inw+2", inw(PORT_DATA + 2), 0xabcd) &&
			      MMIOLAB_CHECK("inb+1 (high byte)", inb(PORT_DATA + 1), 0x12));
}

static enum mmiolab_result t_outl_inl(void)
{
	outl(0x11223344, PORT_DATA);
	return mmiolab_verdict(MMIOLAB_CHECK("inl", inl(PORT_DATA), 0x11223344) &&
			      MMIOLAB_CHECK("inb+1", inb(PORT_DATA + 1), 0x33) &&
			      MMIOLAB_CHECK("inw+2", inw(PORT_DATA + 2), 0x1122));
}

static enum mmiolab_result t_string_forms(void)
{
	static const u8 in[3] = { 0x5a, 0x6b, 0x7c };
	u8 out[3] = { 0 };
	bool ok;
	int i;

	outsb(PORT_DATA, in, sizeof(in));	/* three writes to one port */
	ok = MMIOLAB_CHECK("port after outsb", inb(PORT_DATA), in[2]);
	insb(PORT_DATA, out, sizeof(out));	/* three reads of one port */
	for (i = 0; i < sizeof(out); i++)
		ok = MMIOLAB_CHECK("insb element", out[i], in[2]) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_ioport_map(void)
{
	map = ioport_map(MMIOLAB_PIO_BASE, MMIOLAB_PIO_SIZE);
	return map ? MMIOLAB_PASS : MMIOLAB_FATAL;
}

static enum mmiolab_result t_ioread_iowrite(void)
{
	bool ok;

	ok = MMIOLAB_CHECK("ioread8(ID)", ioread8(map), MMIOLAB_ID & 0xff);
	iowrite8(0x9e, map + MMIOLAB_PIO_STORAGE);
	ok = MMIOLAB_CHECK("ioread8", ioread8(map + MMIOLAB_PIO_STORAGE), 0x9e) && ok;
	iowrite16(0x4321, map + MMIOLAB_PIO_STORAGE + 2);
	ok = MMIOLAB_CHECK("ioread16", ioread16(map + MMIOLAB_PIO_STORAGE + 2), 0x4321) && ok;
	iowrite32(0xa1b2c3d4, map + MMIOLAB_PIO_STORAGE);
	ok = MMIOLAB_CHECK("ioread32", ioread32(map + MMIOLAB_PIO_STORAGE), 0xa1b2c3d4) && ok;
	ok = MMIOLAB_CHECK("inl of the same port", inl(PORT_DATA), 0xa1b2c3d4) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_rep_forms(void)
{
	static const u8 in[4] = { 0x01, 0x02, 0x03, 0x04 };
	u8 out[4] = { 0 };
	bool ok;
	int i;

	iowrite8_rep(map + MMIOLAB_PIO_STORAGE, in, sizeof(in));
	ok = MMIOLAB_CHECK("port after iowrite8_rep", ioread8(map + MMIOLAB_PIO_STORAGE), in[3]);
	ioread8_rep(map + MMIOLAB_PIO_STORAGE, out, sizeof(out));
	for (i = 0; i < sizeof(out); i++)
		ok = MMIOLAB_CHECK("ioread8_rep element", out[i], in[3]) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_unmap_release(void)
{
	ioport_unmap(map);
	map = NULL;
	release_region(MMIOLAB_PIO_BASE, MMIOLAB_PIO_SIZE);
	region = NULL;
	return MMIOLAB_PASS;
}

static enum mmiolab_result t_request_after_release(void)
{
	if (!request_region(MMIOLAB_PIO_BASE, MMIOLAB_PIO_SIZE, NAME))
		return MMIOLAB_FAIL;
	release_region(MMIOLAB_PIO_BASE, MMIOLAB_PIO_SIZE);
	return MMIOLAB_PASS;
}

static const struct mmiolab_case cases[] = {
	{ "request_region", t_request },
	{ "request_region_conflict_fails", t_request_conflict },
	{ "id_inb", t_id_inb },
	{ "outb_inb", t_outb_inb },
	{ "outw_inw", t_outw_inw },
	{ "outl_inl", t_outl_inl },
	{ "outsb_insb", t_string_forms },
	{ "ioport_map", t_ioport_map },
	{ "iowrite_ioread_mapped", t_ioread_iowrite },
	{ "iowrite8_rep_ioread8_rep", t_rep_forms },
	{ "ioport_unmap_release_region", t_unmap_release },
	{ "request_after_release", t_request_after_release },
};

static int __init pio_ports_init(void)
{
	unsigned int failed = mmiolab_run_cases(cases, ARRAY_SIZE(cases));

	/* after a fatal case the mapping/region may still be held */
	if (map)
		ioport_unmap(map);
	if (region)
		release_region(MMIOLAB_PIO_BASE, MMIOLAB_PIO_SIZE);
	return failed ? -EIO : 0;
}
module_init(pio_ports_init);

/* Only reached when every case passed; lets /init rmmod the module. */
static void __exit pio_ports_exit(void)
{
}
module_exit(pio_ports_exit);

MODULE_DESCRIPTION("mmiolab: port I/O API on the regfile at fixed ports");
MODULE_LICENSE("GPL");
