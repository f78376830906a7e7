// SPDX-License-Identifier: Apache-2.0
/*
 * gpio-test CHIP PORT: drives Linux's gpio-mmio driver through the GPIO character device
 * (uAPI v2) on mmiolab's gpio-mmio model (models/gpio-mmio.toml) and checks what the
 * lines read back:
 *   - the chip has 32 lines;
 *   - lines 0-7 requested as outputs with 0xa5 read back 0xa5, then 0x5a after a set
 *     (the driver writes SET and CLR, the model's DAT reads the latch for outputs);
 *   - line 0 reports itself as an output while requested;
 *   - lines 8-15 requested as inputs read what the model's INPUT test hook drives (written
 *     here through I/O port PORT + 0x14, which the machine maps to the same registers).
 * Prints one line per failed check on stderr; exit status 0 only if every check passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/gpio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define INPUT_OFFSET 0x14

static int failures;

static void fail(const char *what, unsigned long want, unsigned long got)
{
	fprintf(stderr, "gpio-test: %s: want %#lx, got %#lx\n", what, want, got);
	failures++;
}

/* request_lines: request lines FIRST..FIRST+7 with FLAGS (and VALUES for outputs). */
static int request_lines(int chip, unsigned int first, uint64_t flags, uint64_t values)
{
	struct gpio_v2_line_request req;
	unsigned int i;

	memset(&req, 0, sizeof(req));
	for (i = 0; i < 8; i++)
		req.offsets[i] = first + i;
	req.num_lines = 8;
	strcpy(req.consumer, "gpio-test");
	req.config.flags = flags;
	if (flags & GPIO_V2_LINE_FLAG_OUTPUT) {
		req.config.num_attrs = 1;
		req.config.attrs[0].mask = 0xff;
		req.config.attrs[0].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
		req.config.attrs[0].attr.values = values;
	}
	if (ioctl(chip, GPIO_V2_GET_LINE_IOCTL, &req) < 0) {
		fprintf(stderr, "gpio-test: requesting lines %u-%u: %s\n", first, first + 7, strerror(errno));
		exit(1);
	}
	return req.fd;
}

static uint64_t get_values(int line)
{
	struct gpio_v2_line_values v = { .mask = 0xff };

	if (ioctl(line, GPIO_V2_LINE_GET_VALUES_IOCTL, &v) < 0) {
		fprintf(stderr, "gpio-test: reading values: %s\n", strerror(errno));
		exit(1);
	}
	return v.bits;
}

int main(int argc, char **argv)
{
	struct gpio_v2_line_values set = { .mask = 0xff, .bits = 0x5a };
	struct gpio_v2_line_info info;
	struct gpiochip_info chip_info;
	unsigned long port;
	int chip, out, in;

	if (argc != 3) {
		fprintf(stderr, "usage: gpio-test /dev/gpiochipN PORT\n");
		return 2;
	}
	port = strtoul(argv[2], NULL, 0);
	chip = open(argv[1], O_RDWR | O_CLOEXEC);
	if (chip < 0) {
		fprintf(stderr, "gpio-test: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (ioctl(chip, GPIO_GET_CHIPINFO_IOCTL, &chip_info) < 0) {
		fprintf(stderr, "gpio-test: chip info: %s\n", strerror(errno));
		return 1;
	}
	printf("gpio-test: %s is %s (%s), %u lines\n", argv[1], chip_info.name, chip_info.label,
	       chip_info.lines);
	if (chip_info.lines != 32)
		fail("number of lines", 32, chip_info.lines);

	out = request_lines(chip, 0, GPIO_V2_LINE_FLAG_OUTPUT, 0xa5);
	if (get_values(out) != 0xa5)
		fail("outputs 0-7 after requesting them with 0xa5", 0xa5, get_values(out));
	if (ioctl(out, GPIO_V2_LINE_SET_VALUES_IOCTL, &set) < 0) {
		fprintf(stderr, "gpio-test: setting values: %s\n", strerror(errno));
		return 1;
	}
	if (get_values(out) != 0x5a)
		fail("outputs 0-7 after setting 0x5a", 0x5a, get_values(out));
	memset(&info, 0, sizeof(info));
	info.offset = 0;
	if (ioctl(chip, GPIO_V2_GET_LINEINFO_IOCTL, &info) < 0) {
		fprintf(stderr, "gpio-test: line info: %s\n", strerror(errno));
		return 1;
	}
	if (!(info.flags & GPIO_V2_LINE_FLAG_OUTPUT))
		fail("line 0's direction flags (output bit)", GPIO_V2_LINE_FLAG_OUTPUT, info.flags);

	if (ioperm(port, INPUT_OFFSET + 4, 1) < 0) {
		fprintf(stderr, "gpio-test: ioperm(%#lx): %s\n", port, strerror(errno));
		return 1;
	}
	in = request_lines(chip, 8, GPIO_V2_LINE_FLAG_INPUT, 0);
	outl(0x3c00, port + INPUT_OFFSET);
	if (get_values(in) != 0x3c)
		fail("inputs 8-15 while INPUT drives 0x3c00", 0x3c, get_values(in));
	outl(0, port + INPUT_OFFSET);
	if (get_values(in) != 0)
		fail("inputs 8-15 while INPUT drives 0", 0, get_values(in));
	/* the outputs keep their latch whatever the inputs do */
	if (get_values(out) != 0x5a)
		fail("outputs 0-7 after the inputs changed", 0x5a, get_values(out));
	close(in);
	close(out);
	close(chip);
	return failures ? 1 : 0;
}
