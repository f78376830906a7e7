/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The platform driver of a test module whose cases map the device themselves
 * (platform_dt, platform_pio, described_demo): its `result` parameter ("pass", "fail" or
 * "not-probed", read by /init) and MMIOLAB_CASES_DRIVER, a driver bound to one compatible
 * that runs the module's `cases` on the first device it is given and stays bound (keeping
 * the claims the cases made) whenever a case mapped the registers. The module's state is a
 * `t` with at least `pdev` and `base`, defined before MMIOLAB_CASES_DRIVER is used.
 */
#ifndef MMIOLAB_CASES_DRIVER_H
#define MMIOLAB_CASES_DRIVER_H

#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/string.h>

#include "mmiolab-test.h"

static char result[16] = "not-probed";
module_param_string(result, result, sizeof(result), 0444);
MODULE_PARM_DESC(result, "test outcome: pass, fail or not-probed (read-only)");

#define MMIOLAB_CASES_DRIVER(drvname, compat)						\
static int mmiolab_cases_probe(struct platform_device *pdev)				\
{											\
	unsigned int failed;								\
											\
	/* the cases expect exactly one such device */					\
	if (t.pdev)									\
		return -EBUSY;								\
	t.pdev = pdev;									\
	failed = mmiolab_run_cases(cases, ARRAY_SIZE(cases));				\
	strscpy(result, failed ? "fail" : "pass", sizeof(result));			\
	/* stay bound (and keep the claim) whenever the registers are mapped */		\
	if (!t.base) {									\
		t.pdev = NULL;								\
		return -ENODEV;								\
	}										\
	return 0;									\
}											\
											\
static int mmiolab_cases_remove(struct platform_device *pdev)				\
{											\
	t.pdev = NULL;									\
	t.base = NULL;									\
	return 0;									\
}											\
											\
static const struct of_device_id mmiolab_cases_of_match[] = {				\
	{ .compatible = compat },							\
	{ }										\
};											\
MODULE_DEVICE_TABLE(of, mmiolab_cases_of_match);					\
											\
static struct platform_driver mmiolab_cases_driver = {					\
	.probe = mmiolab_cases_probe,							\
	.remove = mmiolab_cases_remove,							\
	.driver = {									\
		.name = drvname,							\
		.of_match_table = mmiolab_cases_of_match,				\
	},										\
};											\
module_platform_driver(mmiolab_cases_driver)

#endif /* MMIOLAB_CASES_DRIVER_H */
