// SPDX-License-Identifier: GPL-2.0
/*
 * A KUnit suite that fails on purpose, loaded once to capture what a failing KUnit suite
 * prints (tests/data/kunit/console.log, the KTAP parser's fixture; README.md beside it).
 * It is not part of the bundled guest tests.
 */
#include <kunit/test.h>
#include <linux/module.h>

static void failing_expectation(struct kunit *test)
{
	int answer = 41;

	kunit_info(test, "a diagnostic before the failure\n");
	KUNIT_EXPECT_EQ(test, answer, 42);
	KUNIT_EXPECT_STREQ_MSG(test, "mmio", "pio", "a message of the test's own");
}

static void failing_assertion_stops_the_case(struct kunit *test)
{
	KUNIT_ASSERT_TRUE(test, false);
	kunit_info(test, "never printed\n");
}

static void passing_case(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, 1 + 1, 2);
}

static void skipped_case(struct kunit *test)
{
	kunit_skip(test, "skipped on purpose");
}

static struct kunit_case failing_cases[] = {
	KUNIT_CASE(failing_expectation),
	KUNIT_CASE(failing_assertion_stops_the_case),
	KUNIT_CASE(passing_case),
	KUNIT_CASE(skipped_case),
	{}
};

static struct kunit_suite failing_suite = {
	.name = "mmiolab_failing",
	.test_cases = failing_cases,
};

static struct kunit_suite all_skipped_suite = {
	.name = "mmiolab_all_skipped",
	.test_cases = (struct kunit_case[]){ KUNIT_CASE(skipped_case), {} },
};

kunit_test_suites(&failing_suite, &all_skipped_suite);

MODULE_LICENSE("GPL");
