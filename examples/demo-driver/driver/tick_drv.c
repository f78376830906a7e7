// SPDX-License-Identifier: GPL-2.0
/*
 * tick_drv: the platform driver of the example `tick` device (../tick.toml), bound through
 * the device tree ("example,tick"). Its probe maps the registers (claiming them under the
 * device's name), checks the part number, enables the device and clears the DONE status
 * bit; the `id` attribute in sysfs shows the ID register, which ../tests/check_tick.sh reads.
 */
#include <linux/io.h>
#include <linux/mod_devicetable.h>
#include <linux/module.h>
#include <linux/platform_device.h>

#include "tick-machine.h"

#define TICK_PART 0x7431

struct tick {
	void __iomem *regs;
};

static ssize_t id_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct tick *t = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%#x\n", readl(t->regs + MMIOLAB_TICK_ID_OFFSET));
}
static DEVICE_ATTR_RO(id);

static int tick_probe(struct platform_device *pdev)
{
	struct tick *t;
	u32 id;

	t = devm_kzalloc(&pdev->dev, sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	t->regs = devm_platform_ioremap_resource(pdev, 0);
	if (IS_ERR(t->regs))
		return PTR_ERR(t->regs);
	id = readl(t->regs + MMIOLAB_TICK_ID_OFFSET);
	if (id >> 16 != TICK_PART) {
		dev_err(&pdev->dev, "not a tick: ID %#x\n", id);
		return -ENODEV;
	}
	writel(MMIOLAB_TICK_CTRL_EN_MASK, t->regs + MMIOLAB_TICK_CTRL_OFFSET);
	writel(MMIOLAB_TICK_STATUS_DONE_MASK, t->regs + MMIOLAB_TICK_STATUS_OFFSET);
	platform_set_drvdata(pdev, t);
	dev_info(&pdev->dev, "tick revision %u\n", id & 0xffff);
	return device_create_file(&pdev->dev, &dev_attr_id);
}

static int tick_remove(struct platform_device *pdev)
{
	struct tick *t = platform_get_drvdata(pdev);

	device_remove_file(&pdev->dev, &dev_attr_id);
	writel(0, t->regs + MMIOLAB_TICK_CTRL_OFFSET);
	return 0;
}

static const struct of_device_id tick_of_match[] = {
	{ .compatible = MMIOLAB_TICK_COMPAT },
	{}
};
MODULE_DEVICE_TABLE(of, tick_of_match);

static struct platform_driver tick_driver = {
	.probe = tick_probe,
	.remove = tick_remove,
	.driver = {
		.name = "tick",
		.of_match_table = tick_of_match,
	},
};
module_platform_driver(tick_driver);

MODULE_DESCRIPTION("Example driver of the mmiolab tick device");
MODULE_LICENSE("GPL");
