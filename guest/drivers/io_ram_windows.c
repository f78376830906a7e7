// SPDX-License-Identifier: GPL-2.0
/*
 * io_ram_windows: memset_io, memcpy_toio and memcpy_fromio on the two RAM windows of the
 * described device apidev (guest/machines/devices/apidev.toml): `tram`, 256 bytes of
 * trapped RAM (every access exits to mmiolab and is traced), and `ram`, one page of
 * memslot-backed RAM (guest memory mapped at the device's address: no exit). The same
 * checks on both: the fill value mmiolab put there at start, memset_io, an unaligned
 * memcpy_toio read back with memcpy_fromio and with single accessors (little-endian
 * bytes), the bytes just outside the copy untouched, and a copy from one window to the
 * other through a bounce buffer.
 */
#include <linux/slab.h>
#include <asm/unaligned.h>

#include "mmiolab-bound.h"

struct window {
	const char *name;
	unsigned int offset, size;
	u8 fill;
};

static const struct window tram = {
	"tram", MMIOLAB_APIDEV_TRAM_OFFSET, MMIOLAB_APIDEV_TRAM_SIZE, MMIOLAB_APIDEV_TRAM_FILL,
};

static const struct window ram = {
	"ram", MMIOLAB_APIDEV_RAM_OFFSET, MMIOLAB_APIDEV_RAM_SIZE, MMIOLAB_APIDEV_RAM_FILL,
};

/* Every byte of the window is @want; prints the first that is not. */
static bool all_bytes(const struct window *w, const char *what, u8 want)
{
	unsigned int i;

	for (i = 0; i < w->size; i++) {
		u8 got = readb(reg(w->offset + i));

		if (got != want) {
			printk(KERN_INFO "    # %s %s: byte %#x is %#x, expected %#x\n", w->name,
			       what, i, got, want);
			return false;
		}
	}
	return true;
}

static enum mmiolab_result fill_and_memset(const struct window *w)
{
	bool ok;

	/* The first case to touch the window: nothing has written it since the machine
	 * started, so it holds the description's fill byte. */
	ok = MMIOLAB_CHECK("first word, the fill byte four times", readl(reg(w->offset)),
			   0x01010101u * w->fill);
	ok = all_bytes(w, "at start", w->fill) && ok;
	memset_io(reg(w->offset), 0x11, w->size);
	ok = all_bytes(w, "after memset_io(0x11)", 0x11) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result copy_round_trip(const struct window *w)
{
	unsigned int len = w->size - 8, at = 3;	/* unaligned on purpose */
	void __iomem *p = reg(w->offset);
	u8 *in, *out;
	bool ok;
	unsigned int i;

	in = kmalloc(len, GFP_KERNEL);
	out = kzalloc(len, GFP_KERNEL);
	if (!in || !out) {
		kfree(in);
		kfree(out);
		return MMIOLAB_FAIL;
	}
	for (i = 0; i < len; i++)
		in[i] = i * 13 + 7;
	memset_io(p, 0x11, w->size);
	memcpy_toio(p + at, in, len);
	memcpy_fromio(out, p + at, len);
	ok = MMIOLAB_CHECK("memcpy_fromio returns what memcpy_toio wrote", memcmp(in, out, len),
			   0);
	ok = MMIOLAB_CHECK("byte before the copy", readb(p + at - 1), 0x11) && ok;
	ok = MMIOLAB_CHECK("byte after the copy", readb(p + at + len), 0x11) && ok;
	/* The same bytes through single accessors: RAM is little-endian bytes. */
	ok = MMIOLAB_CHECK("readb of byte 0 of the copy", readb(p + at), in[0]) && ok;
	ok = MMIOLAB_CHECK("readw at offset 5", readw(p + 5), in[2] | in[3] << 8) && ok;
	ok = MMIOLAB_CHECK("readl at offset 8", readl(p + 8),
			   in[5] | in[6] << 8 | in[7] << 16 | (u32)in[8] << 24) && ok;
	ok = MMIOLAB_CHECK("readq at offset 16", readq(p + 16), get_unaligned_le64(in + 13)) && ok;
	kfree(in);
	kfree(out);
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_tram_fill_memset(void)
{
	return fill_and_memset(&tram);
}

static enum mmiolab_result t_ram_fill_memset(void)
{
	return fill_and_memset(&ram);
}

static enum mmiolab_result t_tram_copy(void)
{
	return copy_round_trip(&tram);
}

static enum mmiolab_result t_ram_copy(void)
{
	return copy_round_trip(&ram);
}

/* writel to one window, memcpy_fromio it, memcpy_toio into the other, readl there. */
static enum mmiolab_result t_window_to_window(void)
{
	u32 buf[MMIOLAB_APIDEV_TRAM_SIZE / 4];
	unsigned int i;
	bool ok = true;

	for (i = 0; i < ARRAY_SIZE(buf); i++)
		writel(0xc0de0000 | i, reg(tram.offset + 4 * i));
	memcpy_fromio(buf, reg(tram.offset), sizeof(buf));
	memcpy_toio(reg(ram.offset + ram.size - sizeof(buf)), buf, sizeof(buf));
	for (i = 0; i < ARRAY_SIZE(buf) && ok; i++)
		ok = MMIOLAB_CHECK("word copied from tram into ram",
				   readl(reg(ram.offset + ram.size - sizeof(buf) + 4 * i)),
				   0xc0de0000 | i);
	return mmiolab_verdict(ok);
}

static const struct mmiolab_case cases[] = {
	{ "trapped_window_fill_and_memset_io", t_tram_fill_memset },
	{ "memslot_window_fill_and_memset_io", t_ram_fill_memset },
	{ "trapped_window_memcpy_toio_fromio", t_tram_copy },
	{ "memslot_window_memcpy_toio_fromio", t_ram_copy },
	{ "trapped_to_memslot_copy", t_window_to_window },
};

MMIOLAB_BOUND_DRIVER("mmiolab-io-ram-windows", MMIOLAB_APIDEV_COMPAT, MMIOLAB_APIDEV_BASE,
		     cases, false);

MODULE_DESCRIPTION("mmiolab: memcpy_toio/memcpy_fromio/memset_io on trapped and memslot RAM");
MODULE_LICENSE("GPL");
