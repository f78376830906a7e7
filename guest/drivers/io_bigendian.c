// SPDX-License-Identifier: GPL-2.0
/*
 * io_bigendian: ioread32be/iowrite32be and ioread16be/iowrite16be on the big-endian
 * described device bedev (guest/machines/devices/bedev.toml, `endianness = "big"`), each
 * checked against a little-endian access of the same register: the big-endian accessor
 * returns the register's value, the little-endian one the value byte-swapped, and a byte
 * read at the register's address returns its most significant byte. Side effects follow
 * the register's bits, so a W1C bit written with the wrong accessor lands in another field.
 * This driver maps its device in the two steps devm_ioremap_resource combines:
 * devm_request_mem_region under the device's name, then devm_ioremap.
 */
#include <linux/swab.h>

#include "mmiolab-bound.h"

#define ID	MMIOLAB_BEDEV_ID_OFFSET
#define DATA	MMIOLAB_BEDEV_DATA_OFFSET
#define STAT	MMIOLAB_BEDEV_STAT_OFFSET
#define HALF	MMIOLAB_BEDEV_HALF_OFFSET
#define RAISE	MMIOLAB_BEDEV_RAISE_OFFSET

static enum mmiolab_result t_id(void)
{
	const u32 id = MMIOLAB_BEDEV_ID_RESET;
	bool ok;

	ok = MMIOLAB_CHECK("ioread32be(ID)", ioread32be(reg(ID)), id);
	ok = MMIOLAB_CHECK("ioread32(ID): the value byte-swapped", ioread32(reg(ID)), swab32(id)) &&
	     ok;
	ok = MMIOLAB_CHECK("readl(ID)", readl(reg(ID)), swab32(id)) && ok;
	ok = MMIOLAB_CHECK("ioread8(ID): the most significant byte", ioread8(reg(ID)), id >> 24) &&
	     ok;
	ok = MMIOLAB_CHECK("ioread8(ID + 3): the least significant byte", ioread8(reg(ID) + 3),
			   id & 0xff) && ok;
	ok = MMIOLAB_CHECK("ioread16be(ID): the high half", ioread16be(reg(ID)), id >> 16) && ok;
	ok = MMIOLAB_CHECK("ioread16be(ID + 2): the low half", ioread16be(reg(ID) + 2),
			   id & 0xffff) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_iowrite32be(void)
{
	bool ok;

	iowrite32be(0x11223344, reg(DATA));
	ok = MMIOLAB_CHECK("ioread32be(DATA)", ioread32be(reg(DATA)), 0x11223344);
	ok = MMIOLAB_CHECK("ioread32(DATA)", ioread32(reg(DATA)), 0x44332211) && ok;
	ok = MMIOLAB_CHECK("ioread8(DATA)", ioread8(reg(DATA)), 0x11) && ok;
	ok = MMIOLAB_CHECK("ioread8(DATA + 3)", ioread8(reg(DATA) + 3), 0x44) && ok;
	return mmiolab_verdict(ok);
}

/* A little-endian write puts its first byte, the value's least significant, at the
 * register's most significant byte. */
static enum mmiolab_result t_iowrite32_lands_swapped(void)
{
	bool ok;

	iowrite32(0xaabbccdd, reg(DATA));
	ok = MMIOLAB_CHECK("ioread32be(DATA) after iowrite32", ioread32be(reg(DATA)), 0xddccbbaa);
	writel(swab32(0x01020304), reg(DATA));
	ok = MMIOLAB_CHECK("ioread32be(DATA) after writel(swab32(v))", ioread32be(reg(DATA)),
			   0x01020304) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_iowrite16be(void)
{
	bool ok;

	iowrite16be(0xbeef, reg(HALF));
	ok = MMIOLAB_CHECK("ioread16be(HALF)", ioread16be(reg(HALF)), 0xbeef);
	ok = MMIOLAB_CHECK("ioread16(HALF)", ioread16(reg(HALF)), 0xefbe) && ok;
	ok = MMIOLAB_CHECK("ioread8(HALF)", ioread8(reg(HALF)), 0xbe) && ok;
	return mmiolab_verdict(ok);
}

/* STAT: VER 31:24 read-only, LATCH 15:8 read-to-clear, EVT 7:0 write-1-to-clear. */
static enum mmiolab_result t_side_effects_big_endian(void)
{
	const u32 reset = MMIOLAB_BEDEV_STAT_RESET;
	bool ok;

	ok = MMIOLAB_CHECK("ioread32be(STAT) at reset", ioread32be(reg(STAT)), reset);
	iowrite16be(0x3c81, reg(RAISE));
	ok = MMIOLAB_CHECK("ioread32be(STAT) after RAISE", ioread32be(reg(STAT)), reset | 0x3c81) &&
	     ok;
	ok = MMIOLAB_CHECK("ioread32be(STAT): LATCH cleared by the last read",
			   ioread32be(reg(STAT)), reset | 0x81) && ok;
	iowrite32be(0x01, reg(STAT));
	ok = MMIOLAB_CHECK("ioread32be(STAT) after iowrite32be(1)", ioread32be(reg(STAT)),
			   reset | 0x80) && ok;
	/* Little-endian: the byte 0x80 goes to the register's top byte, read-only VER. */
	iowrite32(0x80, reg(STAT));
	ok = MMIOLAB_CHECK("ioread32be(STAT) after iowrite32(0x80): EVT untouched, VER read-only",
			   ioread32be(reg(STAT)), reset | 0x80) && ok;
	iowrite32be(0x80, reg(STAT));
	ok = MMIOLAB_CHECK("ioread32be(STAT) after iowrite32be(0x80)", ioread32be(reg(STAT)),
			   reset) && ok;
	return mmiolab_verdict(ok);
}

static const struct mmiolab_case cases[] = {
	{ "ioread32be_vs_ioread32_on_id", t_id },
	{ "iowrite32be_read_back_both_ways", t_iowrite32be },
	{ "iowrite32_lands_byte_swapped", t_iowrite32_lands_swapped },
	{ "iowrite16be_ioread16be", t_iowrite16be },
	{ "w1c_and_read_to_clear_big_endian", t_side_effects_big_endian },
};

MMIOLAB_BOUND_DRIVER("mmiolab-io-bigendian", MMIOLAB_BEDEV_COMPAT, MMIOLAB_BEDEV_BASE,
		     cases, true);

MODULE_DESCRIPTION("mmiolab: ioread32be/iowrite32be on a big-endian described device");
MODULE_LICENSE("GPL");
