// SPDX-License-Identifier: GPL-2.0
/*
 * silly: in the spirit of LDD3's `silly` (chapter 9, "ISA Memory Below 1 MB"), the ISA
 * memory hole 0xa0000-0xfffff (models/isa-hole.toml: RAM whose every access traps) mapped
 * with ioremap and accessed with ioread8/16/32, iowrite8/16/32 and
 * memcpy_toio/memcpy_fromio/memset_io; values must round-trip, and the four ways of
 * reading (LDD3's sillyb, sillyw, sillyl, sillycp) must agree.
 *
 * First, what the guest kernel thinks the hole is: mmiolab's e820 map has RAM below
 * 0xa0000 and from 0x100000 only, so no System RAM and no e820 "Reserved" range may
 * intersect the hole (region_intersects). x86 Linux itself always registers 0xf0000-0xfffff
 * as a busy "System ROM" (arch/x86/kernel/probe_roms.c, whatever the firmware says), so a
 * driver can claim 0xa0000-0xeffff but not the whole hole; ioremap does not look at claims
 * and maps all of it. The claim is made under the host's device name and held until the
 * module is removed.
 */
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "mmiolab-test.h"

#define SILLY_NAME	"isa_hole"	/* the device's name in the host's tree */
#define ISA_BASE	MMIOLAB_ISA_HOLE_BASE
#define ISA_SIZE	MMIOLAB_ISA_HOLE_SIZE
#define SYSTEM_ROM	0xf0000UL	/* probe_roms()'s fixed "System ROM" resource */
#define CLAIM_SIZE	(SYSTEM_ROM - ISA_BASE)

static void __iomem *io_base;
static struct resource *region;

static enum mmiolab_result t_not_ram(void)
{
	int r = region_intersects(ISA_BASE, ISA_SIZE, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE);

	if (r == REGION_DISJOINT)
		return MMIOLAB_PASS;
	printk(KERN_INFO "    # region_intersects(System RAM) = %d: the hole is (partly) RAM\n", r);
	return MMIOLAB_FAIL;
}

static enum mmiolab_result t_not_e820_reserved(void)
{
	int r = region_intersects(ISA_BASE, ISA_SIZE, IORESOURCE_MEM, IORES_DESC_RESERVED);

	if (r == REGION_DISJOINT)
		return MMIOLAB_PASS;
	printk(KERN_INFO "    # region_intersects(e820 Reserved) = %d\n", r);
	return MMIOLAB_FAIL;
}

static enum mmiolab_result t_request_mem_region(void)
{
	region = request_mem_region(ISA_BASE, CLAIM_SIZE, SILLY_NAME);
	if (!region) {
		printk(KERN_INFO "    # request_mem_region(%#lx, %#lx) failed\n", ISA_BASE, CLAIM_SIZE);
		return MMIOLAB_FAIL;
	}
	return MMIOLAB_PASS;
}

static enum mmiolab_result t_ioremap(void)
{
	io_base = ioremap(ISA_BASE, ISA_SIZE);
	if (!io_base) {
		printk(KERN_INFO "    # ioremap(%#lx, %#lx) failed\n", ISA_BASE, ISA_SIZE);
		return MMIOLAB_FATAL;
	}
	return MMIOLAB_PASS;
}

/* Offsets into the hole the single-access cases use: its first and last words, one in
 * the "video" range, one in the "System ROM" page. */
static const unsigned long spots[] = { 0x0, 0x1fffc, 0x3a5a0, 0x50010, ISA_SIZE - 4 };

static enum mmiolab_result t_zero_at_start(void)
{
	bool ok = true;
	int i;

	for (i = 0; i < ARRAY_SIZE(spots); i++)
		ok = MMIOLAB_CHECK("ioread32 of untouched ISA memory (fill 0)",
				   ioread32(io_base + spots[i]), 0) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_8_16_32(void)
{
	bool ok = true;
	int i;

	for (i = 0; i < ARRAY_SIZE(spots); i++) {
		void __iomem *p = io_base + spots[i];
		u32 v = 0x5111e000 + i;

		iowrite8(0xa0 + i, p);
		ok = MMIOLAB_CHECK("ioread8 after iowrite8", ioread8(p), 0xa0 + i) && ok;
		iowrite16(0xb00b + i, p);
		ok = MMIOLAB_CHECK("ioread16 after iowrite16", ioread16(p), 0xb00b + i) && ok;
		iowrite32(v, p);
		ok = MMIOLAB_CHECK("ioread32 after iowrite32", ioread32(p), v) && ok;
		ok = MMIOLAB_CHECK("ioread8 of the top byte", ioread8(p + 3), v >> 24) && ok;
		ok = MMIOLAB_CHECK("ioread16 of the low half", ioread16(p), v & 0xffff) && ok;
	}
	return mmiolab_verdict(ok);
}

#define COPY_AT		0x1ff01		/* unaligned, across the 0xc0000 boundary */
#define COPY_LEN	600

static enum mmiolab_result t_memcpy(void)
{
	u8 *in = kmalloc(COPY_LEN, GFP_KERNEL), *out = kzalloc(COPY_LEN, GFP_KERNEL);
	bool ok;
	int i;

	if (!in || !out) {
		kfree(in);
		kfree(out);
		return MMIOLAB_FAIL;
	}
	for (i = 0; i < COPY_LEN; i++)
		in[i] = i ^ 0x5a;
	memset_io(io_base + COPY_AT - 8, 0xc3, COPY_LEN + 16);
	memcpy_toio(io_base + COPY_AT, in, COPY_LEN);
	memcpy_fromio(out, io_base + COPY_AT, COPY_LEN);
	ok = MMIOLAB_CHECK("memcpy_fromio after memcpy_toio", memcmp(in, out, COPY_LEN), 0);
	ok = MMIOLAB_CHECK("byte before the copy (memset_io)", ioread8(io_base + COPY_AT - 1), 0xc3) &&
	     ok;
	ok = MMIOLAB_CHECK("byte after the copy (memset_io)",
			   ioread8(io_base + COPY_AT + COPY_LEN), 0xc3) && ok;
	kfree(in);
	kfree(out);
	return mmiolab_verdict(ok);
}

/* LDD3's four silly devices read the same memory with ioread8, ioread16, ioread32 and
 * memcpy_fromio: the results must be the same bytes. */
static enum mmiolab_result t_four_ways_agree(void)
{
	enum { LEN = 64, AT = 0x20000 };
	u8 b[LEN], cp[LEN];
	u16 w[LEN / 2];
	u32 l[LEN / 4];
	int i;

	for (i = 0; i < LEN; i += 4)
		iowrite32(0x03020100 + 0x04040404 * (i / 4) + 0x80808080, io_base + AT + i);
	for (i = 0; i < LEN; i++)
		b[i] = ioread8(io_base + AT + i);
	for (i = 0; i < LEN / 2; i++)
		w[i] = ioread16(io_base + AT + 2 * i);	/* little-endian, as the bytes */
	for (i = 0; i < LEN / 4; i++)
		l[i] = ioread32(io_base + AT + 4 * i);
	memcpy_fromio(cp, io_base + AT, LEN);
	return mmiolab_verdict(MMIOLAB_CHECK("byte 5", b[5], 0x85) &&
			      MMIOLAB_CHECK("ioread16 vs ioread8", memcmp(w, b, LEN), 0) &&
			      MMIOLAB_CHECK("ioread32 vs ioread8", memcmp(l, b, LEN), 0) &&
			      MMIOLAB_CHECK("memcpy_fromio vs ioread8", memcmp(cp, b, LEN), 0));
}

static const struct mmiolab_case cases[] = {
	{ "hole_is_not_system_ram", t_not_ram },
	{ "hole_is_not_e820_reserved", t_not_e820_reserved },
	{ "request_mem_region_below_system_rom", t_request_mem_region },
	{ "ioremap_whole_hole", t_ioremap },
	{ "reads_zero_before_any_write", t_zero_at_start },
	{ "iowrite_ioread_8_16_32", t_8_16_32 },
	{ "memset_memcpy_toio_fromio", t_memcpy },
	{ "four_read_methods_agree", t_four_ways_agree },
};

static void silly_release(void)
{
	if (io_base)
		iounmap(io_base);
	io_base = NULL;
	if (region)
		release_mem_region(ISA_BASE, CLAIM_SIZE);
	region = NULL;
}

static int __init silly_init(void)
{
	unsigned int failed = mmiolab_run_cases(cases, ARRAY_SIZE(cases));

	if (failed) {
		silly_release();
		return -EIO;
	}
	return 0;
}
module_init(silly_init);

static void __exit silly_exit(void)
{
	silly_release();
}
module_exit(silly_exit);

MODULE_DESCRIPTION("mmiolab: LDD3-style silly on the ISA memory hole 0xa0000-0xfffff");
MODULE_LICENSE("GPL");
