// SPDX-License-Identifier: Apache-2.0
/*
 * mmiolab-insmod MODULE.ko: load a module with one finit_module() call and
 * report its init's error. (busybox insmod retries a failed finit_module()
 * with init_module(), which runs a failing test module's init twice.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: mmiolab-insmod MODULE.ko\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "mmiolab-insmod: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (syscall(SYS_finit_module, fd, "", 0) != 0) {
		fprintf(stderr, "mmiolab-insmod: loading %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	return 0;
}
