// SPDX-License-Identifier: GPL-2.0
/*
 * tick_kunit: a KUnit suite against the example `tick` device (../tick.toml), run when the
 * module loads (mmiolab's test initramfs loads KUnit modules first, before the driver).
 * It claims and maps the registers at the machine's address (tick-machine.h, from
 * `mmiolab header`) and checks what the description promises: the read-only ID, plain storage, and the
 * DONE bit set at reset and cleared by writing 1.
 */
#include <kunit/test.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/module.h>

#include "tick-machine.h"

struct tick_test {
	void __iomem *regs;
};

/* Each case claims the registers and maps them, and gives both back: the checker's guest
 * agent (mmiolab test --check) flags a module that touches a device it has not claimed. */
static int tick_init(struct kunit *test)
{
	struct tick_test *t = kunit_kzalloc(test, sizeof(*t), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, t);
	KUNIT_ASSERT_NOT_NULL(test, request_mem_region(MMIOLAB_TICK_BASE, MMIOLAB_TICK_MAP_SIZE,
						       "tick_kunit"));
	t->regs = ioremap(MMIOLAB_TICK_BASE, MMIOLAB_TICK_MAP_SIZE);
	if (!t->regs)
		release_mem_region(MMIOLAB_TICK_BASE, MMIOLAB_TICK_MAP_SIZE);
	KUNIT_ASSERT_NOT_NULL(test, t->regs);
	test->priv = t;
	return 0;
}

static void tick_exit(struct kunit *test)
{
	struct tick_test *t = test->priv;

	iounmap(t->regs);
	release_mem_region(MMIOLAB_TICK_BASE, MMIOLAB_TICK_MAP_SIZE);
}

static void tick_id_is_read_only(struct kunit *test)
{
	struct tick_test *t = test->priv;

	KUNIT_EXPECT_EQ(test, readl(t->regs + MMIOLAB_TICK_ID_OFFSET), MMIOLAB_TICK_ID_RESET);
	writel(0, t->regs + MMIOLAB_TICK_ID_OFFSET);
	KUNIT_EXPECT_EQ(test, readl(t->regs + MMIOLAB_TICK_ID_OFFSET), MMIOLAB_TICK_ID_RESET);
}

static void tick_scratch_holds_a_write(struct kunit *test)
{
	struct tick_test *t = test->priv;

	writel(0xa5a5f00d, t->regs + MMIOLAB_TICK_SCRATCH_OFFSET);
	KUNIT_EXPECT_EQ(test, readl(t->regs + MMIOLAB_TICK_SCRATCH_OFFSET), 0xa5a5f00dU);
}

static void tick_done_is_write_one_to_clear(struct kunit *test)
{
	struct tick_test *t = test->priv;
	u32 done = MMIOLAB_TICK_STATUS_DONE_MASK;

	KUNIT_EXPECT_EQ(test, readl(t->regs + MMIOLAB_TICK_STATUS_OFFSET) & done, done);
	writel(0, t->regs + MMIOLAB_TICK_STATUS_OFFSET);
	KUNIT_EXPECT_EQ(test, readl(t->regs + MMIOLAB_TICK_STATUS_OFFSET) & done, done);
	writel(done, t->regs + MMIOLAB_TICK_STATUS_OFFSET);
	KUNIT_EXPECT_EQ(test, readl(t->regs + MMIOLAB_TICK_STATUS_OFFSET) & done, 0U);
}

static struct kunit_case tick_cases[] = {
	KUNIT_CASE(tick_id_is_read_only),
	KUNIT_CASE(tick_scratch_holds_a_write),
	KUNIT_CASE(tick_done_is_write_one_to_clear),
	{}
};

static struct kunit_suite tick_suite = {
	.name = "tick",
	.init = tick_init,
	.exit = tick_exit,
	.test_cases = tick_cases,
};
kunit_test_suite(tick_suite);

MODULE_DESCRIPTION("KUnit suite of the mmiolab example tick device");
MODULE_LICENSE("GPL");
