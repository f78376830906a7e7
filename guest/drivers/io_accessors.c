// SPDX-License-Identifier: GPL-2.0
/*
 * io_accessors: the MMIO accessors at every width on the described device apidev
 * (guest/machines/devices/apidev.toml), each on a register whose fields have side
 * effects, so that what the device did shows on the next read:
 *
 *   readb/writeb, readb_relaxed/writeb_relaxed, ioread8/iowrite8     on STAT8
 *   readw/writew, readw_relaxed/writew_relaxed, ioread16/iowrite16   on STAT16
 *   readl/writel, readl_relaxed/writel_relaxed, ioread32/iowrite32   on STAT
 *   readq/writeq, readq_relaxed/writeq_relaxed, ioread64/iowrite64   on STAT64
 *
 * Every STATn has a read-only version field, a read-to-clear LATCH field and a
 * write-1-to-clear EVT field, both set by the device when the driver writes RAISEn. Each
 * case: the reset value; RAISEn sets EVT and LATCH; the first read returns both, the next
 * one no LATCH (read-to-clear); writing 1 to one EVT bit together with the inverse of the
 * version clears that bit and leaves the version alone (W1C, read-only); writing the
 * other EVT bits back clears them. Also: the ID at every width, 64-bit storage seen as
 * two little-endian halves, and byte reads of single fields of a 32-bit register (only
 * the field read is cleared).
 *
 * x86_64 has no out-of-line ioread64/iowrite64: <linux/io-64-nonatomic-lo-hi.h> makes
 * them ioread64_lo_hi/iowrite64_lo_hi, which on MMIO are one readq/writeq (on ports, two
 * 32-bit accesses: io_port_paths checks that).
 */
#include <linux/io-64-nonatomic-lo-hi.h>

#include "mmiolab-bound.h"

/* One STATn register and its RAISEn, and what the cases raise in it. */
struct stat_reg {
	const char *name;
	unsigned int stat, raise;
	u64 reset;		/* VER at its reset value, the rest 0 */
	u64 ver_mask;
	unsigned int latch_shift;
	u64 evt, latch;		/* what RAISEn sets: EVT bits, LATCH bits (unshifted) */
};

static const struct stat_reg stat8 = {
	.name = "STAT8", .stat = MMIOLAB_APIDEV_STAT8_OFFSET, .raise = MMIOLAB_APIDEV_RAISE8_OFFSET,
	.reset = MMIOLAB_APIDEV_STAT8_RESET, .ver_mask = MMIOLAB_APIDEV_STAT8_VER_MASK,
	.latch_shift = MMIOLAB_APIDEV_STAT8_LATCH_SHIFT, .evt = 0x5, .latch = 0x3,
};

static const struct stat_reg stat16 = {
	.name = "STAT16", .stat = MMIOLAB_APIDEV_STAT16_OFFSET, .raise = MMIOLAB_APIDEV_RAISE16_OFFSET,
	.reset = MMIOLAB_APIDEV_STAT16_RESET, .ver_mask = MMIOLAB_APIDEV_STAT16_VER_MASK,
	.latch_shift = MMIOLAB_APIDEV_STAT16_LATCH_SHIFT, .evt = 0x81, .latch = 0xc,
};

static const struct stat_reg stat32 = {
	.name = "STAT", .stat = MMIOLAB_APIDEV_STAT_OFFSET, .raise = MMIOLAB_APIDEV_RAISE_OFFSET,
	.reset = MMIOLAB_APIDEV_STAT_RESET, .ver_mask = MMIOLAB_APIDEV_STAT_VER_MASK,
	.latch_shift = MMIOLAB_APIDEV_STAT_LATCH_SHIFT, .evt = 0x81, .latch = 0x3c,
};

static const struct stat_reg stat64 = {
	.name = "STAT64", .stat = MMIOLAB_APIDEV_STAT64_OFFSET, .raise = MMIOLAB_APIDEV_RAISE64_OFFSET,
	.reset = MMIOLAB_APIDEV_STAT64_RESET, .ver_mask = MMIOLAB_APIDEV_STAT64_VER_MASK,
	.latch_shift = MMIOLAB_APIDEV_STAT64_LATCH_SHIFT, .evt = 0x80000001, .latch = 0x1234,
};

/* A read and a write accessor of one width, as functions on u64. */
struct accessors {
	const char *read, *write;
	u64 (*rd)(void __iomem *addr);
	void (*wr)(u64 value, void __iomem *addr);
};

#define ACCESSORS(var, r, w)							\
	static u64 var##_rd(void __iomem *addr) { return r(addr); }		\
	static void var##_wr(u64 value, void __iomem *addr) { w(value, addr); }	\
	static const struct accessors var = { #r, #w, var##_rd, var##_wr }

ACCESSORS(plain8, readb, writeb);
ACCESSORS(relaxed8, readb_relaxed, writeb_relaxed);
ACCESSORS(io8, ioread8, iowrite8);
ACCESSORS(plain16, readw, writew);
ACCESSORS(relaxed16, readw_relaxed, writew_relaxed);
ACCESSORS(io16, ioread16, iowrite16);
ACCESSORS(plain32, readl, writel);
ACCESSORS(relaxed32, readl_relaxed, writel_relaxed);
ACCESSORS(io32, ioread32, iowrite32);
ACCESSORS(plain64, readq, writeq);
ACCESSORS(relaxed64, readq_relaxed, writeq_relaxed);
ACCESSORS(io64, ioread64, iowrite64);

static bool check_read(const struct accessors *a, const struct stat_reg *r, const char *step,
		       u64 want)
{
	u64 got = a->rd(reg(r->stat));

	if (got == want)
		return true;
	printk(KERN_INFO "    # %s(%s) %s: got %#llx, expected %#llx\n", a->read, r->name, step,
	       got, want);
	return false;
}

static enum mmiolab_result stat_scenario(const struct stat_reg *r, const struct accessors *a)
{
	u64 latched = r->latch << r->latch_shift;
	u64 low_bit = r->evt & -r->evt;	/* the lowest EVT bit raised */
	bool ok;

	ok = check_read(a, r, "at reset", r->reset);
	a->wr(r->evt | latched, reg(r->raise));
	ok = ok && check_read(a, r, "after RAISE: EVT and LATCH set",
			      r->reset | latched | r->evt);
	ok = ok && check_read(a, r, "second read: LATCH cleared by the first",
			      r->reset | r->evt);
	/* W1C one EVT bit, and try to write the inverse of the read-only version. */
	a->wr((~r->reset & r->ver_mask) | low_bit, reg(r->stat));
	ok = ok && check_read(a, r, "after writing 1 to one EVT bit and ~VER",
			      r->reset | (r->evt & ~low_bit));
	a->wr(r->evt & ~low_bit, reg(r->stat));
	ok = ok && check_read(a, r, "after writing 1 to the other EVT bits", r->reset);
	if (!ok)
		printk(KERN_INFO "    # (%s/%s on %s)\n", a->read, a->write, r->name);
	return mmiolab_verdict(ok);
}

#define STAT_CASE(fn, r, a) \
	static enum mmiolab_result fn(void) { return stat_scenario(&r, &a); }

STAT_CASE(t_stat8_readb_writeb, stat8, plain8)
STAT_CASE(t_stat8_relaxed, stat8, relaxed8)
STAT_CASE(t_stat8_ioread8_iowrite8, stat8, io8)
STAT_CASE(t_stat16_readw_writew, stat16, plain16)
STAT_CASE(t_stat16_relaxed, stat16, relaxed16)
STAT_CASE(t_stat16_ioread16_iowrite16, stat16, io16)
STAT_CASE(t_stat32_readl_writel, stat32, plain32)
STAT_CASE(t_stat32_relaxed, stat32, relaxed32)
STAT_CASE(t_stat32_ioread32_iowrite32, stat32, io32)
STAT_CASE(t_stat64_readq_writeq, stat64, plain64)
STAT_CASE(t_stat64_relaxed, stat64, relaxed64)
STAT_CASE(t_stat64_ioread64_iowrite64, stat64, io64)

/* ID is read-only: its bytes at every width, little-endian; a write changes nothing. */
static enum mmiolab_result t_id_every_width(void)
{
	const u32 id = MMIOLAB_APIDEV_ID_RESET;
	void __iomem *p = reg(MMIOLAB_APIDEV_ID_OFFSET);
	bool ok = true;
	int i;

	writel(0x13572468, reg(MMIOLAB_APIDEV_SCRATCH_OFFSET));
	for (i = 0; i < 4; i++)
		ok = MMIOLAB_CHECK("readb(ID + i)", readb(p + i), (id >> (8 * i)) & 0xff) && ok;
	ok = MMIOLAB_CHECK("readw(ID)", readw(p), id & 0xffff) && ok;
	ok = MMIOLAB_CHECK("readw(ID + 2)", readw(p + 2), id >> 16) && ok;
	ok = MMIOLAB_CHECK("ioread16(ID + 2)", ioread16(p + 2), id >> 16) && ok;
	ok = MMIOLAB_CHECK("ioread8(ID + 3)", ioread8(p + 3), id >> 24) && ok;
	ok = MMIOLAB_CHECK("readl(ID)", readl(p), id) && ok;
	ok = MMIOLAB_CHECK("readq(ID): ID, then SCRATCH above it", readq(p),
			   (u64)0x13572468 << 32 | id) && ok;
	writel(~id, p);
	iowrite8(0, p);
	ok = MMIOLAB_CHECK("ioread32(ID) after writes to it", ioread32(p), id) && ok;
	return mmiolab_verdict(ok);
}

/* 64-bit storage: writeq, read back whole and as two little-endian halves, and the
 * halves written with writel read back with readq. */
static enum mmiolab_result t_scratch64_halves(void)
{
	void __iomem *p = reg(MMIOLAB_APIDEV_SCRATCH64_OFFSET);
	bool ok;

	writeq(0x0123456789abcdefULL, p);
	ok = MMIOLAB_CHECK("readq", readq(p), 0x0123456789abcdefULL);
	ok = MMIOLAB_CHECK("readl (low half)", readl(p), 0x89abcdef) && ok;
	ok = MMIOLAB_CHECK("readl (high half)", readl(p + 4), 0x01234567) && ok;
	writel(0xfeedface, p + 4);
	writew_relaxed(0xbeef, p);
	ok = MMIOLAB_CHECK("readq after writel/writew_relaxed", readq_relaxed(p),
			   0xfeedface89abbeefULL) && ok;
	iowrite64(0, p);
	ok = MMIOLAB_CHECK("ioread64 after iowrite64(0)", ioread64(p), 0) && ok;
	return mmiolab_verdict(ok);
}

/* A plain read-write field beside W1C and read-only ones: STAT.MODE takes what is
 * written; zeros written to EVT leave it. */
static enum mmiolab_result t_rw_field_beside_w1c(void)
{
	void __iomem *stat = reg(MMIOLAB_APIDEV_STAT_OFFSET);
	u32 mode = 0x42 << MMIOLAB_APIDEV_STAT_MODE_SHIFT;
	bool ok;

	writel(0x81, reg(MMIOLAB_APIDEV_RAISE_OFFSET));
	writel(mode, stat);
	ok = MMIOLAB_CHECK("STAT after writing MODE", readl(stat),
			   MMIOLAB_APIDEV_STAT_RESET | mode | 0x81);
	writel(0x81, stat);
	ok = MMIOLAB_CHECK("STAT after clearing EVT (MODE written 0)", readl(stat),
			   MMIOLAB_APIDEV_STAT_RESET) && ok;
	return mmiolab_verdict(ok);
}

/* Byte reads of one field of a 32-bit register: reading the EVT byte leaves LATCH
 * latched; reading the LATCH byte clears LATCH and leaves EVT. */
static enum mmiolab_result t_byte_reads_of_single_fields(void)
{
	void __iomem *stat = reg(MMIOLAB_APIDEV_STAT_OFFSET);
	bool ok;

	writel(0x3c81, reg(MMIOLAB_APIDEV_RAISE_OFFSET));
	ok = MMIOLAB_CHECK("readb(STAT + 0): EVT", readb(stat), 0x81);
	ok = MMIOLAB_CHECK("readb(STAT + 3): VER", readb(stat + 3), 0x5a) && ok;
	ok = MMIOLAB_CHECK("readb(STAT + 1): LATCH still set", readb(stat + 1), 0x3c) && ok;
	ok = MMIOLAB_CHECK("readl(STAT): LATCH cleared by the byte read, EVT kept", readl(stat),
			   MMIOLAB_APIDEV_STAT_RESET | 0x81) && ok;
	writeb(0x81, stat);
	ok = MMIOLAB_CHECK("readl(STAT) after writeb(0x81) to the EVT byte", readl(stat),
			   MMIOLAB_APIDEV_STAT_RESET) && ok;
	return mmiolab_verdict(ok);
}

/* A second mapping of the same registers with devm_ioremap (ioremap does not look at
 * claims): it reads what the first one wrote, and devm_iounmap drops it at once. */
static enum mmiolab_result t_devm_ioremap_second_mapping(void)
{
	struct device *dev = &mmiolab_pdev->dev;
	struct resource *res = platform_get_resource(mmiolab_pdev, IORESOURCE_MEM, 0);
	void __iomem *again;
	bool ok;

	if (!res)
		return MMIOLAB_FAIL;
	again = devm_ioremap(dev, res->start, resource_size(res));
	if (!again) {
		printk(KERN_INFO "    # devm_ioremap(%pR) failed\n", res);
		return MMIOLAB_FAIL;
	}
	ok = MMIOLAB_CHECK("ID through the second mapping", readl(again + MMIOLAB_APIDEV_ID_OFFSET),
			   MMIOLAB_APIDEV_ID_RESET);
	writel(0x600df00d, reg(MMIOLAB_APIDEV_SCRATCH_OFFSET));
	ok = MMIOLAB_CHECK("SCRATCH written through the first mapping",
			   readl(again + MMIOLAB_APIDEV_SCRATCH_OFFSET), 0x600df00d) && ok;
	writel(0x5ca1ab1e, again + MMIOLAB_APIDEV_SCRATCH_OFFSET);
	ok = MMIOLAB_CHECK("SCRATCH written through the second mapping",
			   readl(reg(MMIOLAB_APIDEV_SCRATCH_OFFSET)), 0x5ca1ab1e) && ok;
	devm_iounmap(dev, again);
	return mmiolab_verdict(ok);
}

static const struct mmiolab_case cases[] = {
	{ "devm_ioremap_second_mapping", t_devm_ioremap_second_mapping },
	{ "id_at_every_width", t_id_every_width },
	{ "stat8_readb_writeb", t_stat8_readb_writeb },
	{ "stat8_readb_relaxed_writeb_relaxed", t_stat8_relaxed },
	{ "stat8_ioread8_iowrite8", t_stat8_ioread8_iowrite8 },
	{ "stat16_readw_writew", t_stat16_readw_writew },
	{ "stat16_readw_relaxed_writew_relaxed", t_stat16_relaxed },
	{ "stat16_ioread16_iowrite16", t_stat16_ioread16_iowrite16 },
	{ "stat32_readl_writel", t_stat32_readl_writel },
	{ "stat32_readl_relaxed_writel_relaxed", t_stat32_relaxed },
	{ "stat32_ioread32_iowrite32", t_stat32_ioread32_iowrite32 },
	{ "stat64_readq_writeq", t_stat64_readq_writeq },
	{ "stat64_readq_relaxed_writeq_relaxed", t_stat64_relaxed },
	{ "stat64_ioread64_iowrite64", t_stat64_ioread64_iowrite64 },
	{ "scratch64_as_two_halves", t_scratch64_halves },
	{ "rw_field_beside_w1c_and_ro", t_rw_field_beside_w1c },
	{ "byte_reads_of_single_fields", t_byte_reads_of_single_fields },
};

MMIOLAB_BOUND_DRIVER("mmiolab-io-accessors", MMIOLAB_APIDEV_COMPAT, MMIOLAB_APIDEV_BASE,
		     cases, false);

MODULE_DESCRIPTION("mmiolab: MMIO accessors at every width on a described device's side effects");
MODULE_LICENSE("GPL");
