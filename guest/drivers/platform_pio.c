// SPDX-License-Identifier: GPL-2.0
/*
 * platform_pio: a platform driver bound through the device tree to the
 * "mmiolab,pio-testdev" regfile, an I/O-port device under the DT isa node.
 * It gets the ports as an IORESOURCE_IO resource (translated through the isa
 * node's ranges; needs CONFIG_PCI=y on x86), claims them with
 * devm_request_region (see /proc/ioports), maps them with devm_ioport_map and
 * checks the ID byte and the storage ports.
 *
 * The driver stays bound after the tests; the outcome is in
 * /sys/module/platform_pio/parameters/result ("pass", "fail", "not-probed").
 */
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/mod_devicetable.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/slab.h>

#include "mmiolab-cases-driver.h"

static struct {
	struct platform_device *pdev;
	struct resource *res;
	void __iomem *base;
} t;

static enum mmiolab_result t_io_resource(void)
{
	t.res = platform_get_resource(t.pdev, IORESOURCE_IO, 0);
	if (!t.res) {
		printk(KERN_INFO "    # no IORESOURCE_IO (isa node without ranges, or CONFIG_PCI off?)\n");
		return MMIOLAB_FATAL;
	}
	return mmiolab_verdict(MMIOLAB_CHECK("resource start", t.res->start, MMIOLAB_PIO_DT_BASE) &&
			      MMIOLAB_CHECK("resource size", resource_size(t.res),
					    MMIOLAB_PIO_DT_SIZE));
}

static enum mmiolab_result t_request_region(void)
{
	struct device *dev = &t.pdev->dev;

	if (!devm_request_region(dev, t.res->start, resource_size(t.res), dev_name(dev)))
		return MMIOLAB_FATAL;
	return MMIOLAB_PASS;
}

static enum mmiolab_result t_request_conflict(void)
{
	struct resource *again;

	again = request_region(t.res->start, resource_size(t.res), "mmiolab-pio-dt-again");
	if (!again)
		return MMIOLAB_PASS;
	release_resource(again);
	kfree(again);
	printk(KERN_INFO "    # a second request_region of the same ports succeeded\n");
	return MMIOLAB_FAIL;
}

static enum mmiolab_result t_ioport_map(void)
{
	t.base = devm_ioport_map(&t.pdev->dev, t.res->start, resource_size(t.res));
	return t.base ? MMIOLAB_PASS : MMIOLAB_FATAL;
}

static enum mmiolab_result t_id_byte(void)
{
	return mmiolab_verdict(MMIOLAB_CHECK("ioread8(ID)", ioread8(t.base), MMIOLAB_ID & 0xff) &&
			      MMIOLAB_CHECK("inb(ID)", inb(t.res->start), MMIOLAB_ID & 0xff));
}

static enum mmiolab_result t_storage(void)
{
	void __iomem *data = t.base + MMIOLAB_PIO_STORAGE;

	iowrite8(0x3c, data);
	if (!MMIOLAB_CHECK("ioread8", ioread8(data), 0x3c))
		return MMIOLAB_FAIL;
	iowrite32(0xc001d00d, data);
	return mmiolab_verdict(MMIOLAB_CHECK("ioread32", ioread32(data), 0xc001d00d) &&
			      MMIOLAB_CHECK("ioread16+2", ioread16(data + 2), 0xc001));
}

static const struct mmiolab_case cases[] = {
	{ "platform_get_resource_io", t_io_resource },
	{ "devm_request_region", t_request_region },
	{ "request_region_conflict_fails", t_request_conflict },
	{ "devm_ioport_map", t_ioport_map },
	{ "id_byte", t_id_byte },
	{ "storage_round_trip", t_storage },
};

MMIOLAB_CASES_DRIVER("mmiolab-pio-testdev", MMIOLAB_PIO_DT_COMPAT);

MODULE_DESCRIPTION("mmiolab: platform driver for the DT I/O-port regfile");
MODULE_LICENSE("GPL");
