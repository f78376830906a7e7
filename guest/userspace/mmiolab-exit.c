// SPDX-License-Identifier: Apache-2.0
/*
 * mmiolab-exit STATUS: end the VM by writing STATUS with a 32-bit outl to the
 * test-exit port 0xf4 (QEMU isa-debug-exit compatible; the mmiolab VMM exits
 * with STATUS, QEMU with (STATUS << 1) | 1).
 *
 * Before the write it prints "mmiolab-exit: status STATUS" and waits until
 * the console has sent everything (tcdrain), so no output is lost when the
 * VM stops. Returns 2 if the write did not end the VM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <termios.h>
#include <unistd.h>

/*
 * The VMM's test-exit port (as in drivers/mmiolab-test.h): defined here so that this file
 * builds alone, from the kit an installed mmiolab carries (no drivers/ beside it).
 */
#define MMIOLAB_EXIT_PORT 0xf4

int main(int argc, char **argv)
{
	unsigned long status;
	char *end;

	if (argc != 2 || !*argv[1]) {
		fprintf(stderr, "usage: mmiolab-exit STATUS   (0..4294967295, written to port %#x)\n",
			MMIOLAB_EXIT_PORT);
		return 2;
	}
	errno = 0;
	status = strtoul(argv[1], &end, 0);
	if (errno || *end || status > 0xffffffffUL) {
		fprintf(stderr, "mmiolab-exit: bad STATUS '%s'\n", argv[1]);
		return 2;
	}
	if (ioperm(MMIOLAB_EXIT_PORT, 4, 1)) {
		fprintf(stderr, "mmiolab-exit: ioperm(%#x): %s (kernel without X86_IOPL_IOPERM?)\n",
			MMIOLAB_EXIT_PORT, strerror(errno));
		return 2;
	}
	printf("mmiolab-exit: status %lu\n", status);
	fflush(stdout);
	if (isatty(STDOUT_FILENO))
		tcdrain(STDOUT_FILENO);
	outl((unsigned int)status, MMIOLAB_EXIT_PORT);
	fprintf(stderr, "mmiolab-exit: still running after the write to port %#x (no exit device?)\n",
		MMIOLAB_EXIT_PORT);
	return 2;
}
