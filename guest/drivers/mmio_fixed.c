// SPDX-License-Identifier: GPL-2.0
/*
 * mmio_fixed: the classic I/O memory API on the unclaimed "fixed" regfile at
 * a known physical address: request_mem_region, ioremap, the read/write and
 * ioread/iowrite accessors at every width, the _rep (FIFO) forms, the
 * memcpy/memset_io block forms, conflict detection, and release.
 */
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <asm/unaligned.h>

#include "mmiolab-test.h"

#define NAME "mmiolab-fixed"

/* Scratch offsets in the storage area (all well away from 0x0..0xf). */
#define OFF_ZERO	0x800	/* never written: must read back as zero */
#define OFF_B		0x10
#define OFF_W		0x12
#define OFF_L		0x14
#define OFF_Q		0x18
#define OFF_OVERLAP	0x20
#define OFF_IO32	0x30
#define OFF_REP		0x40
#define OFF_COPY	0x100
#define OFF_SET		0x200
#define OFF_UNALIGNED	0x301

static struct resource *region;
static void __iomem *base;

static enum mmiolab_result t_request(void)
{
	region = request_mem_region(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE, NAME);
	return region ? MMIOLAB_PASS : MMIOLAB_FATAL;
}

static enum mmiolab_result t_request_conflict(void)
{
	struct resource *again;

	again = request_mem_region(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE, NAME "-again");
	if (!again)
		return MMIOLAB_PASS;
	release_resource(again);
	kfree(again);
	printk(KERN_INFO "    # a second request_mem_region of the same range succeeded\n");
	return MMIOLAB_FAIL;
}

static enum mmiolab_result t_ioremap(void)
{
	base = ioremap(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE);
	return base ? MMIOLAB_PASS : MMIOLAB_FATAL;
}

static enum mmiolab_result t_id_ioread32(void)
{
	return mmiolab_verdict(MMIOLAB_CHECK("ioread32(ID)", ioread32(base + MMIOLAB_REG_ID),
					    MMIOLAB_ID));
}

static enum mmiolab_result t_id_widths(void)
{
	bool ok;

	ok = MMIOLAB_CHECK("readb(ID)", readb(base), MMIOLAB_ID & 0xff);
	ok = MMIOLAB_CHECK("readb(ID+3)", readb(base + 3), MMIOLAB_ID >> 24) && ok;
	ok = MMIOLAB_CHECK("readw(ID+2)", readw(base + 2), MMIOLAB_ID >> 16) && ok;
	ok = MMIOLAB_CHECK("readl(SIZE)", readl(base + MMIOLAB_REG_SIZE),
			   MMIOLAB_FIXED_SIZE) && ok;
	ok = MMIOLAB_CHECK("readq(ID)", readq(base),
			   (u64)MMIOLAB_FIXED_SIZE << 32 | MMIOLAB_ID) && ok;
	ok = MMIOLAB_CHECK("ioread32be(ID)", ioread32be(base), swab32(MMIOLAB_ID)) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_id_read_only(void)
{
	bool ok;

	writel(0x12345678, base + MMIOLAB_REG_ID);
	writel(0x9abcdef0, base + MMIOLAB_REG_SIZE);
	writeb(0xff, base + 1);
	ok = MMIOLAB_CHECK("ID after writes", readl(base + MMIOLAB_REG_ID), MMIOLAB_ID);
	ok = MMIOLAB_CHECK("SIZE after writes", readl(base + MMIOLAB_REG_SIZE),
			   MMIOLAB_FIXED_SIZE) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_storage_zero(void)
{
	return mmiolab_verdict(MMIOLAB_CHECK("readq(untouched storage)", readq(base + OFF_ZERO), 0));
}

static enum mmiolab_result t_readb_writeb(void)
{
	writeb(0xa5, base + OFF_B);
	writeb(0x5a, base + OFF_B + 1);
	return mmiolab_verdict(MMIOLAB_CHECK("readb", readb(base + OFF_B), 0xa5) &&
			      MMIOLAB_CHECK("readb+1", readb(base + OFF_B + 1), 0x5a));
}

static enum mmiolab_result t_readw_writew(void)
{
	writew(0xbeef, base + OFF_W);
	return mmiolab_verdict(MMIOLAB_CHECK("readw", readw(base + OFF_W), 0xbeef));
}

static enum mmiolab_result t_readl_writel(void)
{
	bool ok;

	writel(0xdeadbeef, base + OFF_L);
	ok = MMIOLAB_CHECK("readl", readl(base + OFF_L), 0xdeadbeef);
	writel_relaxed(0x01020304, base + OFF_L);
	ok = MMIOLAB_CHECK("readl_relaxed", readl_relaxed(base + OFF_L), 0x01020304) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_readq_writeq(void)
{
	writeq(0x0123456789abcdefULL, base + OFF_Q);
	return mmiolab_verdict(MMIOLAB_CHECK("readq", readq(base + OFF_Q),
					    0x0123456789abcdefULL));
}

/* Narrow and wide accesses overlapping the same bytes, little-endian. */
static enum mmiolab_result t_mixed_widths(void)
{
	bool ok;
	int i;

	writeq(0x8877665544332211ULL, base + OFF_OVERLAP);
	ok = MMIOLAB_CHECK("readl(lo)", readl(base + OFF_OVERLAP), 0x44332211);
	ok = MMIOLAB_CHECK("readl(hi)", readl(base + OFF_OVERLAP + 4), 0x88776655) && ok;
	for (i = 0; i < 8; i++)
		ok = MMIOLAB_CHECK("readb(each byte)", readb(base + OFF_OVERLAP + i),
				   0x11 * (i + 1)) && ok;
	/* a 2-byte write at an odd offset, read back as the high byte alone */
	writew(0xcafe, base + OFF_OVERLAP + 1);
	ok = MMIOLAB_CHECK("readb after odd writew", readb(base + OFF_OVERLAP + 2), 0xca) && ok;
	ok = MMIOLAB_CHECK("readq after odd writew", readq(base + OFF_OVERLAP),
			   0x8877665544cafe11ULL) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_iowrite32_ioread32(void)
{
	bool ok;

	iowrite32(0xfeedf00d, base + OFF_IO32);
	ok = MMIOLAB_CHECK("ioread32", ioread32(base + OFF_IO32), 0xfeedf00d);
	iowrite16(0x1234, base + OFF_IO32 + 4);
	iowrite8(0x56, base + OFF_IO32 + 6);
	ok = MMIOLAB_CHECK("ioread16", ioread16(base + OFF_IO32 + 4), 0x1234) && ok;
	ok = MMIOLAB_CHECK("ioread8", ioread8(base + OFF_IO32 + 6), 0x56) && ok;
	iowrite32be(0x11223344, base + OFF_IO32 + 8);
	ok = MMIOLAB_CHECK("readl after iowrite32be", readl(base + OFF_IO32 + 8),
			   0x44332211) && ok;
	return mmiolab_verdict(ok);
}

/* The _rep forms hit ONE register repeatedly (a FIFO), unlike memcpy_toio. */
static enum mmiolab_result t_rep(void)
{
	static const u32 in[4] = { 0x11111111, 0x22222222, 0x33333333, 0x44444444 };
	u32 out[4];
	bool ok;
	int i;

	iowrite32_rep(base + OFF_REP, in, ARRAY_SIZE(in));
	ok = MMIOLAB_CHECK("register after iowrite32_rep", readl(base + OFF_REP), in[3]);
	ok = MMIOLAB_CHECK("next register untouched", readl(base + OFF_REP + 4), 0) && ok;
	memset(out, 0, sizeof(out));
	ioread32_rep(base + OFF_REP, out, ARRAY_SIZE(out));
	for (i = 0; i < ARRAY_SIZE(out); i++)
		ok = MMIOLAB_CHECK("ioread32_rep element", out[i], in[3]) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_memcpy_io(void)
{
	u8 in[64], out[64];
	bool ok;
	int i;

	for (i = 0; i < sizeof(in); i++)
		in[i] = 0x80 ^ (i * 7);
	memcpy_toio(base + OFF_COPY, in, sizeof(in));
	memset(out, 0, sizeof(out));
	memcpy_fromio(out, base + OFF_COPY, sizeof(out));
	ok = MMIOLAB_CHECK("memcpy_fromio == memcpy_toio", memcmp(in, out, sizeof(in)), 0);
	ok = MMIOLAB_CHECK("readb in copied window", readb(base + OFF_COPY + 13), in[13]) && ok;
	ok = MMIOLAB_CHECK("readl in copied window", readl(base + OFF_COPY + 20),
			   get_unaligned_le32(&in[20])) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_memcpy_io_unaligned(void)
{
	static const u8 in[13] = "mmiolab-13by";
	u8 out[sizeof(in)];

	memcpy_toio(base + OFF_UNALIGNED, in, sizeof(in));
	memcpy_fromio(out, base + OFF_UNALIGNED, sizeof(out));
	return mmiolab_verdict(MMIOLAB_CHECK("unaligned round trip", memcmp(in, out, sizeof(in)), 0) &&
			      MMIOLAB_CHECK("byte before untouched", readb(base + OFF_UNALIGNED - 1), 0) &&
			      MMIOLAB_CHECK("byte after untouched",
					    readb(base + OFF_UNALIGNED + sizeof(in)), 0));
}

static enum mmiolab_result t_memset_io(void)
{
	bool ok = true;
	int i;

	memset_io(base + OFF_SET, 0xa5, 64);
	for (i = 0; i < 64; i += 8)
		ok = MMIOLAB_CHECK("readq in memset window", readq(base + OFF_SET + i),
				   0xa5a5a5a5a5a5a5a5ULL) && ok;
	ok = MMIOLAB_CHECK("byte after window untouched", readb(base + OFF_SET + 64), 0) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_unmap_release(void)
{
	iounmap(base);
	base = NULL;
	release_mem_region(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE);
	region = NULL;
	return MMIOLAB_PASS;
}

static enum mmiolab_result t_request_after_release(void)
{
	if (!request_mem_region(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE, NAME))
		return MMIOLAB_FAIL;
	release_mem_region(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE);
	return MMIOLAB_PASS;
}

static const struct mmiolab_case cases[] = {
	{ "request_mem_region", t_request },
	{ "request_mem_region_conflict_fails", t_request_conflict },
	{ "ioremap", t_ioremap },
	{ "id_ioread32", t_id_ioread32 },
	{ "id_size_all_widths", t_id_widths },
	{ "id_size_read_only", t_id_read_only },
	{ "storage_initially_zero", t_storage_zero },
	{ "readb_writeb", t_readb_writeb },
	{ "readw_writew", t_readw_writew },
	{ "readl_writel", t_readl_writel },
	{ "readq_writeq", t_readq_writeq },
	{ "mixed_widths_little_endian", t_mixed_widths },
	{ "iowrite_ioread", t_iowrite32_ioread32 },
	{ "iowrite32_rep_ioread32_rep", t_rep },
	{ "memcpy_toio_fromio", t_memcpy_io },
	{ "memcpy_io_unaligned", t_memcpy_io_unaligned },
	{ "memset_io", t_memset_io },
	{ "iounmap_release_mem_region", t_unmap_release },
	{ "request_after_release", t_request_after_release },
};

static int __init mmio_fixed_init(void)
{
	unsigned int failed = mmiolab_run_cases(cases, ARRAY_SIZE(cases));

	/* after a fatal case the mapping/region may still be held */
	if (base)
		iounmap(base);
	if (region)
		release_mem_region(MMIOLAB_FIXED_BASE, MMIOLAB_FIXED_SIZE);
	return failed ? -EIO : 0;
}
module_init(mmio_fixed_init);

/* Only reached when every case passed; lets /init rmmod the module. */
static void __exit mmio_fixed_exit(void)
{
}
module_exit(mmio_fixed_exit);

MODULE_DESCRIPTION("mmiolab: I/O memory API on the fixed regfile");
MODULE_LICENSE("GPL");
