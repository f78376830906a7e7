// SPDX-License-Identifier: Apache-2.0
/*
 * mmiolab-insmod MODULE.ko: load a module with one finit_module() call and
 * report its init's error. (busybox insmod retries a failed finit_module()
 * with init_module(), which runs a failing test module's init twice.)
 *
 * mmiolab-insmod --kunit-suites MODULE.ko: print how many KUnit suites the
 * module holds (the entries of its .kunit_test_suites section, which the
 * kernel runs at load time), so that /init can plan its KTAP output before
 * loading it.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The whole file in memory (modules are small), or NULL with a message. */
static unsigned char *slurp(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	ssize_t got;
	size_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "mmiolab-insmod: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	buf = malloc(st.st_size ? st.st_size : 1);
	if (!buf) {
		fprintf(stderr, "mmiolab-insmod: %s: out of memory\n", path);
		close(fd);
		return NULL;
	}
	while (done < (size_t)st.st_size && (got = read(fd, buf + done, st.st_size - done)) > 0)
		done += got;
	close(fd);
	*len = done;
	return buf;
}

/* Number of struct kunit_suite pointers in the module's .kunit_test_suites, -1 if not ELF64. */
static long kunit_suites(const unsigned char *elf, size_t len)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)elf;
	const Elf64_Shdr *sh, *names;
	unsigned int i;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shentsize != sizeof(*sh) ||
	    eh->e_shoff > len || (len - eh->e_shoff) / sizeof(*sh) < eh->e_shnum ||
	    eh->e_shstrndx >= eh->e_shnum)
		return -1;
	sh = (const Elf64_Shdr *)(elf + eh->e_shoff);
	names = &sh[eh->e_shstrndx];
	if (names->sh_offset > len || names->sh_size > len - names->sh_offset)
		return -1;
	for (i = 0; i < eh->e_shnum; i++) {
		const char *name = (const char *)elf + names->sh_offset + sh[i].sh_name;
		size_t room = names->sh_size > sh[i].sh_name ? names->sh_size - sh[i].sh_name : 0;

		if (room > 0 && strnlen(name, room) < room && strcmp(name, ".kunit_test_suites") == 0)
			return sh[i].sh_size / sizeof(void *);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int fd;

	if (argc == 3 && strcmp(argv[1], "--kunit-suites") == 0) {
		size_t len = 0;
		unsigned char *elf = slurp(argv[2], &len);
		long n;

		if (!elf)
			return 1;
		n = kunit_suites(elf, len);
		free(elf);
		if (n < 0) {
			fprintf(stderr, "mmiolab-insmod: %s: not a 64-bit ELF module\n", argv[2]);
			return 1;
		}
		printf("%ld\n", n);
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: mmiolab-insmod MODULE.ko\n"
				"       mmiolab-insmod --kunit-suites MODULE.ko\n");
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
