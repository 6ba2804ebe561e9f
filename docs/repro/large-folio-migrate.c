// SPDX-License-Identifier: GPL-2.0
/*
 * Reproducer: migrating a large anonymous folio whose PTEs
 * make_device_exclusive_range() made device-exclusive (kernels before 6.15).
 *
 * Needs CONFIG_DEVICE_PRIVATE, test_hmm loaded (/dev/hmm_dmirror0), two
 * NUMA nodes and THP. Steps: fault in a 2 MiB THP; test_hmm's
 * HMM_DMIRROR_EXCLUSIVE on its first 4 KiB page (the kernel splits the PMD
 * and, before 6.15, converts the PTEs of the whole still-large folio); a CPU
 * write to the second page (its PTE present again, the others still
 * device-exclusive); move_pages() of the folio through that page to the
 * other node; then a read of the range's /proc/self/pagemap entries.
 * On 6.1 and 6.12 the read ends in "kernel BUG at
 * include/linux/swapops.h" (a migration entry of a folio that is no longer
 * locked), or in the exit that unmaps it. A fixed kernel prints "survived".
 *
 *   gcc -static -O2 -o large-folio-migrate large-folio-migrate.c
 *   mmuvisor lab run --version 6.12 -- ./large-folio-migrate
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* lib/test_hmm_uapi.h (6.1 to 6.14) */
struct hmm_dmirror_cmd {
	uint64_t addr, ptr, npages, cpages, faults;
};
#define HMM_DMIRROR_EXCLUSIVE _IOWR('H', 0x05, struct hmm_dmirror_cmd)
#define MPOL_MF_MOVE (1 << 1)
#define HUGE (2UL << 20)
#define PAGE 4096UL
#define KPF_THP (1ULL << 22)

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static uint64_t pagemap_entry(int fd, const char *p)
{
	uint64_t e = 0;

	if (pread(fd, &e, 8, (uintptr_t)p / PAGE * 8) != 8)
		die("pagemap");
	return e;
}

static int node_of(char *p)
{
	void *pages[1] = { p };
	int status = -1;

	if (syscall(SYS_move_pages, 0, 1, pages, NULL, &status, 0))
		die("move_pages (query)");
	return status;
}

int main(void)
{
	char *raw = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p, buf[PAGE];
	int pm, kpf, dev, target, status = -1;
	long left;
	uint64_t e, flags = 0, entries[HUGE / PAGE];
	void *pages[1];
	struct hmm_dmirror_cmd cmd = { 0 };

	if (raw == MAP_FAILED)
		die("mmap");
	p = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	if (madvise(p, HUGE, MADV_HUGEPAGE))
		die("madvise(MADV_HUGEPAGE)");
	memset(p, 1, HUGE);

	pm = open("/proc/self/pagemap", O_RDONLY);
	kpf = open("/proc/kpageflags", O_RDONLY);
	if (pm < 0 || kpf < 0)
		die("pagemap/kpageflags (run as root)");
	e = pagemap_entry(pm, p);
	if (pread(kpf, &flags, 8, (e & ((1ULL << 55) - 1)) * 8) != 8 || !(flags & KPF_THP)) {
		fprintf(stderr, "no THP at %p: cannot reproduce here\n", p);
		return 4;
	}

	dev = open("/dev/hmm_dmirror0", O_RDWR);
	if (dev < 0)
		die("/dev/hmm_dmirror0 (modprobe test_hmm)");
	cmd.addr = (uintptr_t)p;
	cmd.ptr = (uintptr_t)buf;
	cmd.npages = 1;
	if (ioctl(dev, HMM_DMIRROR_EXCLUSIVE, &cmd))
		die("HMM_DMIRROR_EXCLUSIVE");
	printf("page 0 device-exclusive: pagemap %#llx\n",
	       (unsigned long long)pagemap_entry(pm, p));

	p[PAGE] = 2;
	target = node_of(p + PAGE) == 0 ? 1 : 0;
	pages[0] = p + PAGE;
	left = syscall(SYS_move_pages, 0, 1, pages, &target, &status, MPOL_MF_MOVE);
	if (left < 0)
		die("move_pages");
	printf("move_pages of page 1 to node %d: %ld not moved, page status %d\n",
	       target, left, status);
	fflush(stdout);

	if (pread(pm, entries, sizeof(entries), (uintptr_t)p / PAGE * 8) != sizeof(entries))
		die("pagemap of the folio");
	printf("survived: pagemap of all 512 pages read\n");
	return 0;
}
