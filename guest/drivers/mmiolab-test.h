/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * mmiolab guest tests: the default machine layout the VMM emulates, shared by
 * the kernel test modules and the user-space helpers, plus (kernel only) a
 * tiny KTAP subtest printer.
 *
 * Every emulated device is a "regfile":
 *   0x0  ID       read-only, 32-bit, reads MMIOLAB_ID
 *   0x4  SIZE     read-only, 32-bit, the device's size in bytes
 *                 (writes to 0x0..0x7 are ignored)
 *   0x8  DOORBELL writing any value raises the device's interrupt once (edge)
 *   else          little-endian read/write storage, initially zero,
 *                 accessible at widths 1, 2, 4 and 8
 * The 8-port PIO regfiles are the exception: only the ID's low byte is
 * visible at port base+0, and ports base+4..base+7 are plain storage.
 */
#ifndef MMIOLAB_TEST_H
#define MMIOLAB_TEST_H

#define MMIOLAB_ID		0x4d4d494fU	/* "OIMM" little-endian */
#define MMIOLAB_REG_ID		0x0
#define MMIOLAB_REG_SIZE	0x4
#define MMIOLAB_REG_DOORBELL	0x8

/*
 * The devices' addresses: generated from guest/machines/default.toml into
 * mmiolab-machine.h (MMIOLAB_<DEVICE>_BASE, _SIZE, _PIO_BASE, _PIO_SIZE, _IRQ,
 * _COMPAT). `cargo xtask headers` regenerates it after the machine file
 * changes; `cargo xtask test` fails while it is stale. The tests' names:
 */
#include "mmiolab-machine.h"

/* MMIO regfile "fixed" (device regfile): in the DT as "mmiolab,regfile", bound by no driver. */
#define MMIOLAB_FIXED_BASE	MMIOLAB_REGFILE_BASE
#define MMIOLAB_FIXED_SIZE	MMIOLAB_REGFILE_SIZE

/*
 * MMIO regfile "testdev": DT node testdev@d0001000, IOAPIC pin 5:
 * MMIOLAB_TESTDEV_BASE, _SIZE, _IRQ and _COMPAT come from mmiolab-machine.h.
 */

/* PIO regfile (device pioregs) at fixed ports, not in the DT. */
#define MMIOLAB_PIO_BASE	MMIOLAB_PIOREGS_PIO_BASE
#define MMIOLAB_PIO_SIZE	MMIOLAB_PIOREGS_PIO_SIZE
#define MMIOLAB_PIO_STORAGE	4	/* first storage port offset */

/*
 * The fill bytes of apidev's RAM windows (`fill` in guest/machines/devices/apidev.toml;
 * the generated header has no fill values).
 */
#define MMIOLAB_APIDEV_TRAM_FILL	0x3c
#define MMIOLAB_APIDEV_RAM_FILL		0xa5

/* PIO regfile (device piodev) in the DT under the isa node, reg = <1 0x2e0 8>. */
#define MMIOLAB_PIO_DT_BASE	MMIOLAB_PIODEV_PIO_BASE
#define MMIOLAB_PIO_DT_SIZE	MMIOLAB_PIODEV_PIO_SIZE
#define MMIOLAB_PIO_DT_COMPAT	MMIOLAB_PIODEV_COMPAT

/* Test-exit port, QEMU isa-debug-exit compatible: outl(status, 0xf4). */
#define MMIOLAB_EXIT_PORT	0xf4

#ifdef __KERNEL__
#include <linux/kernel.h>
#include <linux/printk.h>
#include <linux/types.h>

/*
 * Each test module runs a table of cases and prints them as a KTAP subtest
 * block, indented by 4 spaces, as a child of the top-level plan that /init
 * prints (Documentation/dev-tools/ktap.rst). Failure details are printed as
 * KTAP diagnostic lines ("    # ...").
 */
enum mmiolab_result {
	MMIOLAB_PASS,
	MMIOLAB_FAIL,
	MMIOLAB_FATAL,	/* failed, and the remaining cases cannot run */
};

struct mmiolab_case {
	const char *name;
	enum mmiolab_result (*run)(void);
};

/* Compare and, on mismatch, print a diagnostic line; returns true on match. */
static inline bool mmiolab_check(const char *what, u64 got, u64 want)
{
	if (got == want)
		return true;
	printk(KERN_INFO "    # %s: got %#llx, expected %#llx\n", what, got, want);
	return false;
}

#define MMIOLAB_CHECK(what, got, want) mmiolab_check(what, (u64)(got), (u64)(want))

static inline enum mmiolab_result mmiolab_verdict(bool ok)
{
	return ok ? MMIOLAB_PASS : MMIOLAB_FAIL;
}

/*
 * Run the cases and print the KTAP block, headed like KUnit's
 * ("# Subtest: <module name>"); returns the number of failed cases.
 */
static inline unsigned int mmiolab_run_cases(const struct mmiolab_case *cases,
					     unsigned int n)
{
	unsigned int i, failed = 0;
	bool fatal = false;

	printk(KERN_INFO "    KTAP version 1\n");
	printk(KERN_INFO "    # Subtest: %s\n", KBUILD_MODNAME);
	printk(KERN_INFO "    1..%u\n", n);
	for (i = 0; i < n; i++) {
		enum mmiolab_result r;

		if (fatal) {
			printk(KERN_INFO "    ok %u %s # SKIP an earlier case failed\n",
			       i + 1, cases[i].name);
			continue;
		}
		r = cases[i].run();
		if (r != MMIOLAB_PASS)
			failed++;
		fatal = r == MMIOLAB_FATAL;
		printk(KERN_INFO "    %s %u %s\n", r == MMIOLAB_PASS ? "ok" : "not ok",
		       i + 1, cases[i].name);
	}
	return failed;
}
#endif /* __KERNEL__ */

#endif /* MMIOLAB_TEST_H */
