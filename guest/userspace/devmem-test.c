// SPDX-License-Identifier: Apache-2.0
/*
 * devmem-test CLAIM_MODULE.ko: what /dev/mem allows on a kernel with
 * STRICT_DEVMEM + IO_STRICT_DEVMEM (linux 6.1, drivers/char/mem.c,
 * arch/x86/mm/init.c devmem_is_allowed, kernel/resource.c):
 *
 *  - I/O memory that no driver has claimed busy can be mmap()ed and read;
 *  - read()/pread() on x86 only covers RAM below high_memory
 *    (valid_phys_addr_range), so on MMIO it fails with EFAULT, claimed or not;
 *  - System RAM above 1 MiB is refused (mmap: EPERM);
 *  - once a driver claims a range busy (request_mem_region), mmap() of it
 *    fails with EPERM, and the claim revokes existing mappings of it
 *    (revoke_iomem -> unmap_mapping_range), so touching an old mapping
 *    raises SIGBUS;
 *  - after the claim is released the range can be mapped again.
 *
 * The same for a RAM window (apidev's memslot-backed page): while unclaimed it is mapped
 * read-write, a pattern written through /dev/mem reads back through a new mapping and is
 * what the claiming module reads through ioremap (its ram_word parameter); once claimed it
 * is refused and the old mapping revoked; after the release the pattern reads back. The
 * trapped RAM window of the demo device, claimed by the bound described_demo driver, is
 * refused.
 *
 * The claim is made by loading CLAIM_MODULE (finit_module) and undone by
 * unloading it (delete_module). Results are printed as an indented KTAP
 * subtest block through /dev/kmsg, so they interleave correctly with the
 * kernel's messages (one open per line: /dev/kmsg rate-limits each open
 * file to 10 lines per 5 s); the exit status is 0 if every case passed,
 * else 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../drivers/mmiolab-test.h"

#define CLAIM_MODULE_NAME "devmem_claim"
#define RAM_WINDOW (MMIOLAB_APIDEV_BASE + MMIOLAB_APIDEV_RAM_OFFSET)
#define DEMO_SRAM (MMIOLAB_DEMO_BASE + MMIOLAB_DEMO_SRAM_OFFSET)
#define PATTERN_WORDS 128

static const char *const case_names[] = {
	"open_dev_mem",
	"mmap_unclaimed_reads_id",
	"pread_mmio_efault",
	"mmap_ram_refused",
	"mmap_driver_claimed_refused",
	"mmap_claimed_trapped_ram_window_refused",
	"unclaimed_ram_window_write_then_read",
	"load_claim_module",
	"mmap_claimed_refused",
	"old_mapping_revoked_sigbus",
	"claim_module_reads_the_pattern",
	"mmap_claimed_ram_window_refused",
	"old_ram_window_mapping_revoked_sigbus",
	"unload_claim_module",
	"mmap_after_release_reads_id",
	"ram_window_after_release_reads_the_pattern",
};
#define N_CASES ((int)(sizeof(case_names) / sizeof(case_names[0])))

static int case_no, failed;

/* Print one line as one kernel log record (stdout if there is no /dev/kmsg). */
static void emit(const char *fmt, ...)
{
	FILE *out = fopen("/dev/kmsg", "w");
	va_list ap;

	va_start(ap, fmt);
	vfprintf(out ? out : stdout, fmt, ap);
	va_end(ap);
	if (out)
		fclose(out);
	else
		fflush(stdout);
}

/* Report the next case of case_names[]. */
static void report(bool ok)
{
	if (!ok)
		failed++;
	emit("    %s %d %s\n", ok ? "ok" : "not ok", case_no + 1, case_names[case_no]);
	case_no++;
}

static void skip(const char *why)
{
	emit("    ok %d %s # SKIP %s\n", case_no + 1, case_names[case_no], why);
	case_no++;
}

/* mmap one page of /dev/mem at @phys; returns MAP_FAILED and sets errno on failure. */
static volatile uint32_t *map_page(int fd, uint64_t phys)
{
	return mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, (off_t)phys);
}

static bool mmap_refused(int fd, uint64_t phys, const char *what)
{
	volatile uint32_t *p = map_page(fd, phys);

	if (p == MAP_FAILED && errno == EPERM)
		return true;
	if (p == MAP_FAILED)
		emit("    # mmap %s: %s, expected EPERM\n", what, strerror(errno));
	else {
		emit("    # mmap %s succeeded, expected EPERM\n", what);
		munmap((void *)p, 4096);
	}
	return false;
}

static bool mmap_reads_id(int fd, uint64_t phys)
{
	volatile uint32_t *p = map_page(fd, phys);
	uint32_t id;

	if (p == MAP_FAILED) {
		emit("    # mmap %#" PRIx64 ": %s\n", phys, strerror(errno));
		return false;
	}
	id = p[MMIOLAB_REG_ID / 4];
	munmap((void *)p, 4096);
	if (id == MMIOLAB_ID)
		return true;
	emit("    # ID read through /dev/mem: %#x, expected %#x\n", id, MMIOLAB_ID);
	return false;
}

/* Find the start of a /proc/iomem entry named @name, or, with @ram_above,
 * whether any System RAM ends above @ram_above. */
static bool iomem_lookup(const char *name, uint64_t *start, uint64_t ram_above)
{
	char line[256], entry[128];
	uint64_t s, e;
	FILE *f = fopen("/proc/iomem", "r");
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, " %" SCNx64 "-%" SCNx64 " : %127[^\n]", &s, &e, entry) != 3)
			continue;
		if (name && !strcmp(entry, name)) {
			*start = s;
			found = true;
		} else if (!name && !strcmp(entry, "System RAM") && e >= ram_above) {
			found = true;
		}
	}
	fclose(f);
	return found;
}

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

/* Touch an old mapping: true if the access raised SIGBUS. */
static bool access_faults(volatile uint32_t *p)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	volatile bool faulted = false;
	volatile uint32_t v = 0;

	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(bus_jmp, 1) == 0)
		v = p[0];
	else
		faulted = true;
	sigaction(SIGBUS, &old, NULL);
	if (!faulted)
		emit("    # old mapping still readable after the claim (read %#x)\n", v);
	return faulted;
}

/* Word i of the pattern written into the RAM window. */
static uint32_t pattern(int i)
{
	return 0xde7e0000u ^ (uint32_t)(i * 0x01000193u);
}

/* Map the page at @phys read-only and compare its first words with the pattern. */
static bool reads_pattern(int fd, uint64_t phys)
{
	volatile uint32_t *p = map_page(fd, phys);
	bool ok = true;
	int i;

	if (p == MAP_FAILED) {
		emit("    # mmap %#" PRIx64 ": %s\n", phys, strerror(errno));
		return false;
	}
	for (i = 0; i < PATTERN_WORDS && ok; i++) {
		if (p[i] != pattern(i)) {
			emit("    # word %d at %#" PRIx64 ": %#x, expected %#x\n", i, phys, p[i],
			     pattern(i));
			ok = false;
		}
	}
	munmap((void *)p, 4096);
	return ok;
}

/* Write the pattern through a read-write mapping of the page at @phys. */
static bool write_pattern(uint64_t phys)
{
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	volatile uint32_t *p;
	int i;

	if (fd < 0) {
		emit("    # open /dev/mem read-write: %s\n", strerror(errno));
		return false;
	}
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)phys);
	close(fd);
	if (p == MAP_FAILED) {
		emit("    # mmap %#" PRIx64 " read-write: %s\n", phys, strerror(errno));
		return false;
	}
	for (i = 0; i < PATTERN_WORDS; i++)
		p[i] = pattern(i);
	munmap((void *)p, 4096);
	return true;
}

/* The claim module's ram_word parameter: the window's first 8 bytes as it read them. */
static bool claim_saw_pattern(void)
{
	FILE *f = fopen("/sys/module/" CLAIM_MODULE_NAME "/parameters/ram_word", "r");
	unsigned long long word = 0, want = (uint64_t)pattern(1) << 32 | pattern(0);
	int n = f ? fscanf(f, "%llu", &word) : 0;

	if (f)
		fclose(f);
	if (n != 1) {
		emit("    # cannot read the ram_word parameter\n");
		return false;
	}
	if (word != want)
		emit("    # the module read %#llx through ioremap, expected %#llx\n", word, want);
	return word == want;
}

int main(int argc, char **argv)
{
	volatile uint32_t *early, *ram_early = MAP_FAILED;
	uint64_t kernel_code;
	uint32_t word;
	ssize_t n;
	int fd, mfd;

	if (argc != 2) {
		fprintf(stderr, "usage: devmem-test PATH/TO/" CLAIM_MODULE_NAME ".ko\n");
		return 2;
	}
	emit("    KTAP version 1\n");
	emit("    # Subtest: devmem\n");
	emit("    1..%d\n", N_CASES);

	/* 1 */
	fd = open("/dev/mem", O_RDONLY | O_SYNC);
	if (fd < 0)
		emit("    # open /dev/mem: %s\n", strerror(errno));
	report(fd >= 0);
	if (fd < 0) {
		while (case_no < N_CASES)
			skip("no /dev/mem");
		return 1;
	}

	/* 2: unclaimed I/O memory is mappable; keep this mapping for case 8 */
	early = map_page(fd, MMIOLAB_FIXED_BASE);
	if (early == MAP_FAILED) {
		emit("    # mmap fixed regfile: %s\n", strerror(errno));
		report(false);
	} else {
		word = early[MMIOLAB_REG_ID / 4];
		if (word != MMIOLAB_ID)
			emit("    # ID read through /dev/mem: %#x, expected %#x\n", word, MMIOLAB_ID);
		report(word == MMIOLAB_ID);
	}

	/* 3: read() is for RAM only on x86 (unless RAM reaches this high) */
	if (iomem_lookup(NULL, NULL, MMIOLAB_FIXED_BASE)) {
		skip("System RAM extends above the fixed regfile");
	} else {
		n = pread(fd, &word, sizeof(word), MMIOLAB_FIXED_BASE);
		if (!(n < 0 && errno == EFAULT))
			emit("    # pread returned %zd (%s), expected EFAULT\n", n,
			     n < 0 ? strerror(errno) : "data");
		report(n < 0 && errno == EFAULT);
	}

	/* 4: STRICT_DEVMEM refuses System RAM above 1 MiB */
	if (iomem_lookup("Kernel code", &kernel_code, 0))
		report(mmap_refused(fd, kernel_code & ~4095ULL, "kernel code"));
	else
		skip("no 'Kernel code' entry in /proc/iomem");

	/* 5: the testdev range is held busy by the bound platform_dt driver */
	report(mmap_refused(fd, MMIOLAB_TESTDEV_BASE, "testdev (claimed by platform_dt)"));

	/* 6: the demo's trapped RAM window, inside the region described_demo holds */
	report(mmap_refused(fd, DEMO_SRAM & ~4095ULL, "demo sram (claimed by described_demo)"));

	/* 7: the unclaimed memslot RAM window: write through /dev/mem, read back through a
	 * new mapping; keep a mapping for case 13 */
	if (write_pattern(RAM_WINDOW) && reads_pattern(fd, RAM_WINDOW)) {
		ram_early = map_page(fd, RAM_WINDOW);
		report(ram_early != MAP_FAILED);
	} else {
		report(false);
	}

	/* 8: claim the fixed regfile and the RAM window from a module */
	mfd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (mfd < 0 || syscall(SYS_finit_module, mfd, "", 0) != 0) {
		emit("    # loading %s: %s\n", argv[1], strerror(errno));
		report(false);
		while (case_no < N_CASES)
			skip("claim module not loaded");
		return 1;
	}
	close(mfd);
	report(true);

	/* 9, 10: the claim makes the range unmappable and revokes old mappings */
	report(mmap_refused(fd, MMIOLAB_FIXED_BASE, "fixed (claimed)"));
	if (early != MAP_FAILED)
		report(access_faults(early));
	else
		skip("no early mapping");

	/* 11-13: the same for the RAM window, which holds what case 7 wrote */
	report(claim_saw_pattern());
	report(mmap_refused(fd, RAM_WINDOW, "RAM window (claimed)"));
	if (ram_early != MAP_FAILED)
		report(access_faults(ram_early));
	else
		skip("no early mapping of the RAM window");

	/* 14-16: release the claims; the ranges are mappable again */
	if (syscall(SYS_delete_module, CLAIM_MODULE_NAME, O_NONBLOCK) != 0) {
		emit("    # unloading " CLAIM_MODULE_NAME ": %s\n", strerror(errno));
		report(false);
		skip("claim still held");
		skip("claim still held");
	} else {
		report(true);
		report(mmap_reads_id(fd, MMIOLAB_FIXED_BASE));
		report(reads_pattern(fd, RAM_WINDOW));
	}
	close(fd);
	return failed ? 1 : 0;
}
