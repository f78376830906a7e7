// SPDX-License-Identifier: GPL-2.0
/*
 * io_port_paths: the port I/O API on the described device apidev, whose first 0x40 bytes
 * of registers are mapped both at its MMIO base and at I/O ports
 * (guest/machines/default.toml): the same register through both spaces. request_region
 * (shown in /proc/ioports under the device's name) and its conflict, inb/inw/inl against
 * readb/readw/readl, outb side effects (write-1-to-clear, read-to-clear) seen through MMIO
 * and the other way round, outsb/insb and outsw/insw on FIFOs (order, level, overflow,
 * underflow), ioport_map + ioread8/iowrite8/ioread8_rep on the same registers as MMIO, and
 * ioread64_lo_hi through ports: two 32-bit port reads, low half first.
 */
#include <linux/ioport.h>
#include <linux/slab.h>

#include "mmiolab-bound.h"

#define PORT(off)	(MMIOLAB_APIDEV_PIO_BASE + (off))

#define LEVEL	MMIOLAB_APIDEV_BSTAT_LEVEL_MASK
#define EMPTY	MMIOLAB_APIDEV_BSTAT_EMPTY_MASK
#define FULL	MMIOLAB_APIDEV_BSTAT_FULL_MASK
#define OVF	MMIOLAB_APIDEV_BSTAT_OVF_MASK
#define UDF	MMIOLAB_APIDEV_BSTAT_UDF_MASK
#define FLUSH	MMIOLAB_APIDEV_BSTAT_FLUSH_MASK
#define FLAGS	(LEVEL | EMPTY | FULL | OVF | UDF)

static void __iomem *ports;	/* ioport_map of the device's ports */

static enum mmiolab_result t_request_region(void)
{
	struct device *dev = &mmiolab_pdev->dev;
	struct resource *again;

	if (!devm_request_region(dev, MMIOLAB_APIDEV_PIO_BASE, MMIOLAB_APIDEV_PIO_SIZE,
				 dev_name(dev))) {
		printk(KERN_INFO "    # request_region(%#x, %#x) failed\n",
		       MMIOLAB_APIDEV_PIO_BASE, MMIOLAB_APIDEV_PIO_SIZE);
		return MMIOLAB_FATAL;
	}
	again = request_region(PORT(MMIOLAB_APIDEV_ID_OFFSET), 4, "mmiolab-io-port-paths-again");
	if (again) {
		release_region(PORT(MMIOLAB_APIDEV_ID_OFFSET), 4);
		printk(KERN_INFO "    # a second request_region inside the claimed ports succeeded\n");
		return MMIOLAB_FAIL;
	}
	return MMIOLAB_PASS;
}

/* ID and SCRATCH read through ports and through MMIO agree at every width. */
static enum mmiolab_result t_in_matches_read(void)
{
	bool ok = true;
	int i;

	writel(0xa1b2c3d4, reg(MMIOLAB_APIDEV_SCRATCH_OFFSET));
	for (i = 0; i < 8; i++)
		ok = MMIOLAB_CHECK("inb vs readb", inb(PORT(i)), readb(reg(i))) && ok;
	ok = MMIOLAB_CHECK("inw(ID + 2) vs readw", inw(PORT(2)), readw(reg(2))) && ok;
	ok = MMIOLAB_CHECK("inl(ID)", inl(PORT(MMIOLAB_APIDEV_ID_OFFSET)),
			   MMIOLAB_APIDEV_ID_RESET) && ok;
	ok = MMIOLAB_CHECK("inl(SCRATCH)", inl(PORT(MMIOLAB_APIDEV_SCRATCH_OFFSET)), 0xa1b2c3d4) &&
	     ok;
	outl(0x0badf00d, PORT(MMIOLAB_APIDEV_SCRATCH_OFFSET));
	ok = MMIOLAB_CHECK("readl(SCRATCH) after outl", readl(reg(MMIOLAB_APIDEV_SCRATCH_OFFSET)),
			   0x0badf00d) && ok;
	return mmiolab_verdict(ok);
}

/* Side effects cross spaces: RAISE8 written with outb, LATCH cleared by inb, seen with
 * readb; EVT cleared with writeb, seen with inb. */
static enum mmiolab_result t_side_effects_across_spaces(void)
{
	const u8 reset = MMIOLAB_APIDEV_STAT8_RESET;
	bool ok;

	outb(0x35, PORT(MMIOLAB_APIDEV_RAISE8_OFFSET));		/* EVT 0x5, LATCH 0x3 */
	ok = MMIOLAB_CHECK("inb(STAT8) after outb(RAISE8)", inb(PORT(MMIOLAB_APIDEV_STAT8_OFFSET)),
			   reset | 0x35);
	ok = MMIOLAB_CHECK("readb(STAT8): LATCH cleared by the port read",
			   readb(reg(MMIOLAB_APIDEV_STAT8_OFFSET)), reset | 0x05) && ok;
	outb(0x01, PORT(MMIOLAB_APIDEV_STAT8_OFFSET));
	ok = MMIOLAB_CHECK("readb(STAT8) after outb of a W1C bit",
			   readb(reg(MMIOLAB_APIDEV_STAT8_OFFSET)), reset | 0x04) && ok;
	writeb(0x04, reg(MMIOLAB_APIDEV_STAT8_OFFSET));
	ok = MMIOLAB_CHECK("inb(STAT8) after writeb of the other W1C bit",
			   inb(PORT(MMIOLAB_APIDEV_STAT8_OFFSET)), reset) && ok;
	return mmiolab_verdict(ok);
}

static bool check_flags(const char *what, u16 got, u16 want)
{
	return MMIOLAB_CHECK(what, got & FLAGS, want);
}

/* outsb/insb on BDATA: 17 bytes into a 16-byte FIFO, 17 out. */
static enum mmiolab_result t_outsb_insb(void)
{
	u8 in[MMIOLAB_APIDEV_BQ_DEPTH + 1], out[MMIOLAB_APIDEV_BQ_DEPTH + 1];
	bool ok;
	int i;

	outw(FLUSH | OVF | UDF, PORT(MMIOLAB_APIDEV_BSTAT_OFFSET));
	for (i = 0; i < sizeof(in); i++)
		in[i] = 0x40 + i;
	outsb(PORT(MMIOLAB_APIDEV_BDATA_OFFSET), in, sizeof(in));
	ok = check_flags("inw(BSTAT) after 17 outsb bytes", inw(PORT(MMIOLAB_APIDEV_BSTAT_OFFSET)),
			 MMIOLAB_APIDEV_BQ_DEPTH | FULL | OVF);
	ok = check_flags("readw(BSTAT), the same through MMIO",
			 readw(reg(MMIOLAB_APIDEV_BSTAT_OFFSET)),
			 MMIOLAB_APIDEV_BQ_DEPTH | FULL | OVF) && ok;
	memset(out, 0, sizeof(out));
	insb(PORT(MMIOLAB_APIDEV_BDATA_OFFSET), out, sizeof(out));
	for (i = 0; i < MMIOLAB_APIDEV_BQ_DEPTH; i++)
		ok = MMIOLAB_CHECK("insb element in order", out[i], in[i]) && ok;
	ok = MMIOLAB_CHECK("insb past the last element", out[MMIOLAB_APIDEV_BQ_DEPTH], 0xee) && ok;
	ok = check_flags("inw(BSTAT) after 17 insb bytes", inw(PORT(MMIOLAB_APIDEV_BSTAT_OFFSET)),
			 EMPTY | OVF | UDF) && ok;
	outw(OVF | UDF, PORT(MMIOLAB_APIDEV_BSTAT_OFFSET));
	ok = check_flags("readw(BSTAT) after outw of OVF|UDF", readw(reg(MMIOLAB_APIDEV_BSTAT_OFFSET)),
			 EMPTY) && ok;
	return mmiolab_verdict(ok);
}

/* outsw/insw on HDATA: 9 half-words into an 8-deep FIFO, 9 out. */
static enum mmiolab_result t_outsw_insw(void)
{
	u16 in[MMIOLAB_APIDEV_HQ_DEPTH + 1], out[MMIOLAB_APIDEV_HQ_DEPTH + 1];
	bool ok;
	int i;

	outw(FLUSH | OVF | UDF, PORT(MMIOLAB_APIDEV_HSTAT_OFFSET));
	for (i = 0; i < ARRAY_SIZE(in); i++)
		in[i] = 0x7100 + 0x11 * i;
	outsw(PORT(MMIOLAB_APIDEV_HDATA_OFFSET), in, ARRAY_SIZE(in));
	ok = check_flags("inw(HSTAT) after 9 outsw half-words",
			 inw(PORT(MMIOLAB_APIDEV_HSTAT_OFFSET)), MMIOLAB_APIDEV_HQ_DEPTH | FULL | OVF);
	memset(out, 0, sizeof(out));
	insw(PORT(MMIOLAB_APIDEV_HDATA_OFFSET), out, ARRAY_SIZE(out));
	for (i = 0; i < MMIOLAB_APIDEV_HQ_DEPTH; i++)
		ok = MMIOLAB_CHECK("insw element in order", out[i], in[i]) && ok;
	ok = MMIOLAB_CHECK("insw past the last element", out[MMIOLAB_APIDEV_HQ_DEPTH], 0xeeee) && ok;
	ok = check_flags("inw(HSTAT) after 9 insw half-words",
			 inw(PORT(MMIOLAB_APIDEV_HSTAT_OFFSET)), EMPTY | OVF | UDF) && ok;
	outw(OVF | UDF, PORT(MMIOLAB_APIDEV_HSTAT_OFFSET));
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_ioport_map(void)
{
	ports = devm_ioport_map(&mmiolab_pdev->dev, MMIOLAB_APIDEV_PIO_BASE, MMIOLAB_APIDEV_PIO_SIZE);
	if (!ports) {
		printk(KERN_INFO "    # devm_ioport_map(%#x) failed\n", MMIOLAB_APIDEV_PIO_BASE);
		return MMIOLAB_FATAL;
	}
	return MMIOLAB_PASS;
}

/* ioread8 through the port mapping against readb through MMIO, and writes crossing. */
static enum mmiolab_result t_ioread8_same_registers(void)
{
	void __iomem *scratch = ports + MMIOLAB_APIDEV_SCRATCH_OFFSET;
	bool ok = true;
	int i;

	for (i = 0; i < 4; i++)
		ok = MMIOLAB_CHECK("ioread8(ports + ID + i) vs readb", ioread8(ports + i),
				   readb(reg(i))) && ok;
	writel(0x11223344, reg(MMIOLAB_APIDEV_SCRATCH_OFFSET));
	iowrite8(0x6d, scratch + 1);
	ok = MMIOLAB_CHECK("readl(SCRATCH) after iowrite8 through ports",
			   readl(reg(MMIOLAB_APIDEV_SCRATCH_OFFSET)), 0x11226d44) && ok;
	iowrite16(0xcafe, reg(MMIOLAB_APIDEV_SCRATCH_OFFSET) + 2);
	ok = MMIOLAB_CHECK("ioread32(ports + SCRATCH) after iowrite16 through MMIO",
			   ioread32(scratch), 0xcafe6d44) && ok;
	return mmiolab_verdict(ok);
}

/* A FIFO filled through MMIO with iowrite8_rep, drained through ports with ioread8_rep. */
static enum mmiolab_result t_rep_across_spaces(void)
{
	static const u8 in[6] = { 0xa0, 0xb1, 0xc2, 0xd3, 0xe4, 0xf5 };
	u8 out[6] = { 0 };
	bool ok;
	int i;

	iowrite16(FLUSH | OVF | UDF, ports + MMIOLAB_APIDEV_BSTAT_OFFSET);
	iowrite8_rep(reg(MMIOLAB_APIDEV_BDATA_OFFSET), in, sizeof(in));
	ok = check_flags("ioread16(ports + BSTAT)", ioread16(ports + MMIOLAB_APIDEV_BSTAT_OFFSET),
			 sizeof(in));
	ioread8_rep(ports + MMIOLAB_APIDEV_BDATA_OFFSET, out, sizeof(out));
	for (i = 0; i < sizeof(out); i++)
		ok = MMIOLAB_CHECK("element in order", out[i], in[i]) && ok;
	ok = check_flags("readw(BSTAT)", readw(reg(MMIOLAB_APIDEV_BSTAT_OFFSET)), EMPTY) && ok;
	return mmiolab_verdict(ok);
}

/* ioread64_lo_hi on a port mapping is two inl, low half first: the high half's
 * read-to-clear LATCH is cleared by the second; iowrite64_lo_hi is two outl. */
static enum mmiolab_result t_ioread64_lo_hi_through_ports(void)
{
	void __iomem *stat64 = ports + MMIOLAB_APIDEV_STAT64_OFFSET;
	const u64 reset = MMIOLAB_APIDEV_STAT64_RESET;
	bool ok;

	writeq(0x0000123480000001ULL, reg(MMIOLAB_APIDEV_RAISE64_OFFSET));
	ok = MMIOLAB_CHECK("ioread64_lo_hi(ports + STAT64)", ioread64_lo_hi(stat64),
			   reset | 0x0000123480000001ULL);
	ok = MMIOLAB_CHECK("readq(STAT64): LATCH cleared by the port read",
			   readq(reg(MMIOLAB_APIDEV_STAT64_OFFSET)), reset | 0x80000001ULL) && ok;
	iowrite64_lo_hi(0x80000001ULL, stat64);
	ok = MMIOLAB_CHECK("readq(STAT64) after iowrite64_lo_hi of the EVT bits",
			   readq(reg(MMIOLAB_APIDEV_STAT64_OFFSET)), reset) && ok;
	return mmiolab_verdict(ok);
}

static const struct mmiolab_case cases[] = {
	{ "request_region_and_conflict", t_request_region },
	{ "inb_inw_inl_outl_match_mmio", t_in_matches_read },
	{ "outb_inb_side_effects_seen_through_mmio", t_side_effects_across_spaces },
	{ "outsb_insb_on_a_fifo", t_outsb_insb },
	{ "outsw_insw_on_a_fifo", t_outsw_insw },
	{ "ioport_map", t_ioport_map },
	{ "ioport_map_ioread8_vs_readb", t_ioread8_same_registers },
	{ "rep_forms_across_spaces", t_rep_across_spaces },
	{ "ioread64_lo_hi_through_ports", t_ioread64_lo_hi_through_ports },
};

MMIOLAB_BOUND_DRIVER("mmiolab-io-port-paths", MMIOLAB_APIDEV_COMPAT, MMIOLAB_APIDEV_BASE,
		     cases, false);

MODULE_DESCRIPTION("mmiolab: port I/O and ioport_map on a device mapped in both spaces");
MODULE_LICENSE("GPL");
