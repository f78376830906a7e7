/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The common part of the io_* test drivers: a platform driver bound through the device
 * tree to one described device, whose probe maps the device (platform_get_resource, then
 * devm_ioremap_resource, or its two steps devm_request_mem_region + devm_ioremap: the
 * region shows in /proc/iomem under the device's name while the driver is bound) and runs
 * a table of KTAP cases. The outcome is in
 * /sys/module/<module>/parameters/result (pass, fail or not-probed), as for platform_dt.
 * The driver stays bound until the module is removed, so /init can look at the claims
 * while it is loaded and check that rmmod releases them.
 *
 * A driver file defines its cases, then
 * MMIOLAB_BOUND_DRIVER(driver name, compatible, physical base, cases, two_step).
 */
#ifndef MMIOLAB_BOUND_H
#define MMIOLAB_BOUND_H

#include <linux/err.h>
#include <linux/io.h>
#include <linux/mod_devicetable.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/string.h>

#include "mmiolab-test.h"

static char result[16] = "not-probed";
module_param_string(result, result, sizeof(result), 0444);
MODULE_PARM_DESC(result, "test outcome: pass, fail or not-probed (read-only)");

/* The bound device and its MMIO mapping, for the cases. */
static struct platform_device *mmiolab_pdev;
static void __iomem *mmiolab_base;

static inline void __iomem *reg(unsigned int offset)
{
	return mmiolab_base + offset;
}

/*
 * Map resource 0 of @pdev, with devm_ioremap_resource or (@two_step) with
 * devm_request_mem_region under the device's name, then devm_ioremap; prints why on
 * failure.
 */
static inline int mmiolab_bound_map(struct platform_device *pdev, phys_addr_t want,
				    bool two_step)
{
	struct resource *res = platform_get_resource(pdev, IORESOURCE_MEM, 0);
	struct device *dev = &pdev->dev;
	void __iomem *base;

	if (!res) {
		printk(KERN_INFO "    # platform_get_resource(IORESOURCE_MEM, 0): none\n");
		return -ENODEV;
	}
	if (res->start != want) {
		printk(KERN_INFO "    # resource starts at %pa, expected %pa\n", &res->start, &want);
		return -ENODEV;
	}
	if (two_step) {
		if (!devm_request_mem_region(dev, res->start, resource_size(res), dev_name(dev))) {
			printk(KERN_INFO "    # devm_request_mem_region(%pR) failed\n", res);
			return -EBUSY;
		}
		base = devm_ioremap(dev, res->start, resource_size(res));
		if (!base) {
			printk(KERN_INFO "    # devm_ioremap(%pR) failed\n", res);
			return -ENOMEM;
		}
	} else {
		base = devm_ioremap_resource(dev, res);
		if (IS_ERR(base)) {
			printk(KERN_INFO "    # devm_ioremap_resource: %pe\n", base);
			return PTR_ERR(base);
		}
	}
	mmiolab_base = base;
	return 0;
}

#define MMIOLAB_BOUND_DRIVER(drvname, compat, phys, cases, two_step)			\
static int mmiolab_bound_probe(struct platform_device *pdev)				\
{											\
	unsigned int failed;								\
	int err;									\
											\
	if (mmiolab_pdev)								\
		return -EBUSY;								\
	mmiolab_pdev = pdev;								\
	err = mmiolab_bound_map(pdev, phys, two_step);					\
	if (err) {									\
		printk(KERN_INFO "    # %s: cannot map the device, no case ran\n",	\
		       KBUILD_MODNAME);							\
		strscpy(result, "fail", sizeof(result));				\
		mmiolab_pdev = NULL;							\
		return err;								\
	}										\
	failed = mmiolab_run_cases(cases, ARRAY_SIZE(cases));				\
	strscpy(result, failed ? "fail" : "pass", sizeof(result));			\
	return 0;									\
}											\
											\
static int mmiolab_bound_remove(struct platform_device *pdev)				\
{											\
	mmiolab_pdev = NULL;								\
	mmiolab_base = NULL;								\
	return 0;									\
}											\
											\
static const struct of_device_id mmiolab_bound_of_match[] = {				\
	{ .compatible = compat },							\
	{ }										\
};											\
MODULE_DEVICE_TABLE(of, mmiolab_bound_of_match);					\
											\
static struct platform_driver mmiolab_bound_driver = {					\
	.probe = mmiolab_bound_probe,							\
	.remove = mmiolab_bound_remove,							\
	.driver = {									\
		.name = drvname,							\
		.of_match_table = mmiolab_bound_of_match,				\
	},										\
};											\
module_platform_driver(mmiolab_bound_driver)

#endif /* MMIOLAB_BOUND_H */
