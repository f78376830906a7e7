// SPDX-License-Identifier: GPL-2.0
/*
 * io_rep_fifo: the repeating accessors on the FIFOs of the described device apidev
 * (guest/machines/devices/apidev.toml): iowrite8_rep/ioread8_rep on the 16-byte FIFO bq
 * (data register BDATA), iowrite16_rep/ioread16_rep on the 8-half-word FIFO hq (HDATA),
 * iowrite32_rep/ioread32_rep on the 4-word FIFO wq (WDATA). Each writes one element more
 * than the FIFO holds, and the status register must say: level = depth, FULL, OVF (the
 * extra element was dropped); then reads one element more than it holds: the elements in
 * order, then the FIFO's empty value, and EMPTY, UDF. The flags are write-1-to-clear.
 * A partial fill, a partial drain and FLUSH check the level in between.
 */
#include "mmiolab-bound.h"

/* The status fields, the same in BSTAT, HSTAT and WSTAT. */
#define LEVEL	MMIOLAB_APIDEV_BSTAT_LEVEL_MASK
#define EMPTY	MMIOLAB_APIDEV_BSTAT_EMPTY_MASK
#define FULL	MMIOLAB_APIDEV_BSTAT_FULL_MASK
#define OVF	MMIOLAB_APIDEV_BSTAT_OVF_MASK
#define UDF	MMIOLAB_APIDEV_BSTAT_UDF_MASK
#define FLUSH	MMIOLAB_APIDEV_BSTAT_FLUSH_MASK
#define FLAGS	(LEVEL | EMPTY | FULL | OVF | UDF)

struct fifo {
	const char *name;
	unsigned int data, stat, depth, bytes;
	u32 empty_read;
	void (*write_rep)(void __iomem *addr, const void *buf, unsigned long count);
	void (*read_rep)(const void __iomem *addr, void *buf, unsigned long count);
};

static const struct fifo bq = {
	"bq", MMIOLAB_APIDEV_BDATA_OFFSET, MMIOLAB_APIDEV_BSTAT_OFFSET, MMIOLAB_APIDEV_BQ_DEPTH,
	1, 0xee, iowrite8_rep, ioread8_rep,
};

static const struct fifo hq = {
	"hq", MMIOLAB_APIDEV_HDATA_OFFSET, MMIOLAB_APIDEV_HSTAT_OFFSET, MMIOLAB_APIDEV_HQ_DEPTH,
	2, 0xeeee, iowrite16_rep, ioread16_rep,
};

static const struct fifo wq = {
	"wq", MMIOLAB_APIDEV_WDATA_OFFSET, MMIOLAB_APIDEV_WSTAT_OFFSET, MMIOLAB_APIDEV_WQ_DEPTH,
	4, 0xeeeeeeee, iowrite32_rep, ioread32_rep,
};

/* The status register, read with the accessor of its width (WSTAT is 32 bits). */
static u32 status(const struct fifo *f)
{
	return f->stat == MMIOLAB_APIDEV_WSTAT_OFFSET ? ioread32(reg(f->stat)) :
							ioread16(reg(f->stat));
}

static void write_status(const struct fifo *f, u32 v)
{
	if (f->stat == MMIOLAB_APIDEV_WSTAT_OFFSET)
		iowrite32(v, reg(f->stat));
	else
		iowrite16(v, reg(f->stat));
}

static bool check_status(const struct fifo *f, const char *when, u32 want)
{
	u32 got = status(f) & FLAGS;

	if (got == want)
		return true;
	printk(KERN_INFO "    # %s status %s: got %#x, expected %#x (level %u)\n", f->name, when,
	       got, want, want & LEVEL);
	return false;
}

/* Element i of the test pattern, cut to the element size. */
static u32 element(const struct fifo *f, unsigned int i)
{
	u32 v = 0x9d3c1a00u + 0x01010101u * (i + 1);

	return f->bytes == 4 ? v : v & ((1u << (8 * f->bytes)) - 1);
}

static u32 get(const struct fifo *f, const void *buf, unsigned int i)
{
	switch (f->bytes) {
	case 1:
		return ((const u8 *)buf)[i];
	case 2:
		return ((const u16 *)buf)[i];
	default:
		return ((const u32 *)buf)[i];
	}
}

static void put(const struct fifo *f, void *buf, unsigned int i, u32 v)
{
	switch (f->bytes) {
	case 1:
		((u8 *)buf)[i] = v;
		break;
	case 2:
		((u16 *)buf)[i] = v;
		break;
	default:
		((u32 *)buf)[i] = v;
	}
}

#define MAX_DEPTH 16

static enum mmiolab_result overflow_then_underflow(const struct fifo *f)
{
	u32 in[MAX_DEPTH + 1], out[MAX_DEPTH + 1];
	unsigned int i, n = f->depth + 1;
	bool ok;

	write_status(f, FLUSH | OVF | UDF);
	ok = check_status(f, "after FLUSH", EMPTY);
	for (i = 0; i < n; i++)
		put(f, in, i, element(f, i));
	f->write_rep(reg(f->data), in, n);
	ok = check_status(f, "after depth + 1 writes", f->depth | FULL | OVF) && ok;
	memset(out, 0, sizeof(out));
	f->read_rep(reg(f->data), out, n);
	for (i = 0; i < f->depth; i++)
		ok = MMIOLAB_CHECK("element read back in order", get(f, out, i), element(f, i)) &&
		     ok;
	ok = MMIOLAB_CHECK("read past the last element", get(f, out, f->depth), f->empty_read) &&
	     ok;
	ok = check_status(f, "after depth + 1 reads", EMPTY | OVF | UDF) && ok;
	write_status(f, OVF | UDF);
	ok = check_status(f, "after writing 1 to OVF and UDF", EMPTY) && ok;
	return mmiolab_verdict(ok);
}

static enum mmiolab_result t_bytes(void)
{
	return overflow_then_underflow(&bq);
}

static enum mmiolab_result t_halfwords(void)
{
	return overflow_then_underflow(&hq);
}

static enum mmiolab_result t_words(void)
{
	return overflow_then_underflow(&wq);
}

/* Five bytes in, three out: level 2, in order, no flag; FLUSH empties without UDF. */
static enum mmiolab_result t_partial_and_flush(void)
{
	static const u8 in[5] = { 0x10, 0x21, 0x32, 0x43, 0x54 };
	u8 out[3] = { 0 };
	bool ok;
	int i;

	write_status(&bq, FLUSH | OVF | UDF);
	iowrite8_rep(reg(bq.data), in, sizeof(in));
	ok = check_status(&bq, "after 5 writes", 5);
	ioread8_rep(reg(bq.data), out, sizeof(out));
	for (i = 0; i < sizeof(out); i++)
		ok = MMIOLAB_CHECK("element read back in order", out[i], in[i]) && ok;
	ok = check_status(&bq, "after 3 reads", 2) && ok;
	write_status(&bq, FLUSH);
	ok = check_status(&bq, "after FLUSH", EMPTY) && ok;
	ok = MMIOLAB_CHECK("ioread8 of the flushed FIFO", ioread8(reg(bq.data)), bq.empty_read) &&
	     ok;
	ok = check_status(&bq, "after that read", EMPTY | UDF) && ok;
	write_status(&bq, UDF);
	return mmiolab_verdict(ok);
}

static const struct mmiolab_case cases[] = {
	{ "iowrite8_rep_ioread8_rep_overflow_underflow", t_bytes },
	{ "iowrite16_rep_ioread16_rep_overflow_underflow", t_halfwords },
	{ "iowrite32_rep_ioread32_rep_overflow_underflow", t_words },
	{ "partial_fill_drain_and_flush", t_partial_and_flush },
};

MMIOLAB_BOUND_DRIVER("mmiolab-io-rep-fifo", MMIOLAB_APIDEV_COMPAT, MMIOLAB_APIDEV_BASE,
		     cases, false);

MODULE_DESCRIPTION("mmiolab: ioread*_rep/iowrite*_rep on a described device's FIFOs");
MODULE_LICENSE("GPL");
