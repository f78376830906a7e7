// SPDX-License-Identifier: GPL-2.0
/*
 * mmiolab_kunit_demo: a KUnit suite against the bundled demo device (models/demo.toml) of
 * the default machine, run by KUnit when the module loads (CONFIG_KUNIT=y in the guest
 * kernel). It is the bundled example of a user's KUnit test module: /init loads every
 * module of /lib/modules/kunit/ first, and `mmiolab test` reports each suite, case and
 * parameter of their KTAP output.
 *
 * The suite claims and maps the demo's registers itself (it does not bind the DT node:
 * the described_demo driver does, later) and every case starts from a device reset
 * (CTRL.RESET), so the cases do not depend on each other; the suite leaves the device
 * reset, as the drivers loaded after it expect to find it.
 */
#include <kunit/test.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>

#include "mmiolab-test.h"

#define DEMO_REG(name) (demo_regs + MMIOLAB_DEMO_##name##_OFFSET)

static void __iomem *demo_regs;

static int demo_suite_init(struct kunit_suite *suite)
{
	if (!request_mem_region(MMIOLAB_DEMO_BASE, MMIOLAB_DEMO_MAP_SIZE, "mmiolab_kunit_demo"))
		return -EBUSY;
	demo_regs = ioremap(MMIOLAB_DEMO_BASE, MMIOLAB_DEMO_MAP_SIZE);
	if (!demo_regs) {
		release_mem_region(MMIOLAB_DEMO_BASE, MMIOLAB_DEMO_MAP_SIZE);
		return -ENOMEM;
	}
	return 0;
}

static void demo_reset(void)
{
	writel(MMIOLAB_DEMO_CTRL_RESET_MASK, DEMO_REG(CTRL));
}

static void demo_suite_exit(struct kunit_suite *suite)
{
	demo_reset();
	iounmap(demo_regs);
	release_mem_region(MMIOLAB_DEMO_BASE, MMIOLAB_DEMO_MAP_SIZE);
}

static int demo_case_init(struct kunit *test)
{
	demo_reset();
	return 0;
}

static void demo_id_reads_part_and_revision(struct kunit *test)
{
	u32 id = readl(DEMO_REG(ID));

	KUNIT_EXPECT_EQ(test, id, MMIOLAB_DEMO_ID_RESET);
	kunit_info(test, "ID 0x%08x: part 0x%04x, revision %u\n", id,
		   (id & MMIOLAB_DEMO_ID_PART_MASK) >> MMIOLAB_DEMO_ID_PART_SHIFT,
		   (id & MMIOLAB_DEMO_ID_REV_MASK) >> MMIOLAB_DEMO_ID_REV_SHIFT);
}

/* STATUS.POR reads 1 once after a reset, then 0 (read-to-clear). */
static void demo_por_reads_one_once_after_reset(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, readl(DEMO_REG(STATUS)) & MMIOLAB_DEMO_STATUS_POR_MASK,
			MMIOLAB_DEMO_STATUS_POR_MASK);
	KUNIT_EXPECT_EQ(test, readl(DEMO_REG(STATUS)) & MMIOLAB_DEMO_STATUS_POR_MASK, 0U);
}

/* FLAGS: LEDS write-1-to-set, TOG write-1-to-toggle, ARM write-0-to-clear (reset 0xff). */
static void demo_flags_bit_operations(struct kunit *test)
{
	writel(0x0001ff05, DEMO_REG(FLAGS));	/* LEDS |= 0x05, TOG ^= 0xff, ARM &= 0x01 */
	KUNIT_EXPECT_EQ(test, readl(DEMO_REG(FLAGS)), 0x0001ff05U);
	writel(0x00ff0f02, DEMO_REG(FLAGS));	/* LEDS |= 0x02, TOG ^= 0x0f, ARM unchanged */
	KUNIT_EXPECT_EQ(test, readl(DEMO_REG(FLAGS)), 0x0001f007U);
}

/* One offset, two registers: writes reach CSUM_IN, reads CSUM, the running sum. */
static void demo_checksum_read_write_split(struct kunit *test)
{
	writel(0x10, DEMO_REG(CSUM_IN));
	writel(0x20, DEMO_REG(CSUM_IN));
	writel(0xffffffff, DEMO_REG(CSUM_IN));
	KUNIT_EXPECT_EQ(test, readl(DEMO_REG(CSUM)), 0x2fU);
}

/* CTRL.BANK picks which scratch word answers at 0x10. */
static void demo_banked_scratch(struct kunit *test)
{
	writel(0xaaaa0000, DEMO_REG(WIN_A));
	writel(MMIOLAB_DEMO_CTRL_BANK_MASK, DEMO_REG(CTRL));
	writel(0xbbbb0000, DEMO_REG(WIN_B));
	KUNIT_EXPECT_EQ(test, readl(DEMO_REG(WIN_B)), 0xbbbb0000U);
	writel(0, DEMO_REG(CTRL));
	KUNIT_EXPECT_EQ(test, readl(DEMO_REG(WIN_A)), 0xaaaa0000U);
}

/* The queue with 0 to 9 words pushed: level, flags and the order of what pops out. */
struct demo_queue_fill {
	unsigned int pushed;
	const char *what;
};

static const struct demo_queue_fill demo_queue_fills[] = {
	{ 0, "empty" },
	{ 1, "one word" },
	{ 4, "threshold" },
	{ 8, "full" },
	{ 9, "one word too many" },
};

static void demo_queue_fill_desc(const struct demo_queue_fill *fill, char *desc)
{
	snprintf(desc, KUNIT_PARAM_DESC_SIZE, "%u words (%s)", fill->pushed, fill->what);
}

KUNIT_ARRAY_PARAM(demo_queue, demo_queue_fills, demo_queue_fill_desc);

static void demo_queue_level_and_order(struct kunit *test)
{
	const struct demo_queue_fill *fill = test->param_value;
	unsigned int depth = 8, held = min(fill->pushed, depth), i;
	u32 qstat;

	for (i = 0; i < fill->pushed; i++)
		writel(0x100 + i, DEMO_REG(QDATA));
	qstat = readl(DEMO_REG(QSTAT));
	KUNIT_EXPECT_EQ(test, (qstat & MMIOLAB_DEMO_QSTAT_LEVEL_MASK) >> MMIOLAB_DEMO_QSTAT_LEVEL_SHIFT, held);
	KUNIT_EXPECT_EQ(test, !!(qstat & MMIOLAB_DEMO_QSTAT_EMPTY_MASK), held == 0);
	KUNIT_EXPECT_EQ(test, !!(qstat & MMIOLAB_DEMO_QSTAT_FULL_MASK), held == depth);
	KUNIT_EXPECT_EQ(test, !!(qstat & MMIOLAB_DEMO_QSTAT_OVF_MASK), fill->pushed > depth);
	for (i = 0; i < held; i++)
		KUNIT_EXPECT_EQ(test, readl(DEMO_REG(QDATA)), 0x100 + i);
}

static struct kunit_case demo_cases[] = {
	KUNIT_CASE(demo_id_reads_part_and_revision),
	KUNIT_CASE(demo_por_reads_one_once_after_reset),
	KUNIT_CASE(demo_flags_bit_operations),
	KUNIT_CASE(demo_checksum_read_write_split),
	KUNIT_CASE(demo_banked_scratch),
	KUNIT_CASE_PARAM(demo_queue_level_and_order, demo_queue_gen_params),
	{}
};

static struct kunit_suite demo_suite = {
	.name = "mmiolab_demo",
	.suite_init = demo_suite_init,
	.suite_exit = demo_suite_exit,
	.init = demo_case_init,
	.test_cases = demo_cases,
};

kunit_test_suite(demo_suite);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mmiolab: KUnit suite against the demo device of the default machine");
