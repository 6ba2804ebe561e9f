// SPDX-License-Identifier: GPL-2.0
/*
 * Figures for any version of the module, old ABI (16-byte ATTACH) or new:
 * kernel memory (Slab + VmallocUsed) per open file and per converted and
 * released page, and the longest mmv_invalidate() (function_graph) when 1%
 * of NPAGES converted pages are still held. Build static against the
 * version's header, run in the lab as root:
 *   gcc -O2 -static -I<kmod>/include/uapi/linux -o figures figures.c
 *   mmuvisor lab run --mem 6G -- ./figures 1048576
 * (MMUVISOR_KMOD_DIR=<kmod> for another version of the module). The
 * callback time needs function_graph, which since the small lab kernel only
 * the debug flavour has (--flavour debug; its lockdep slows the callback,
 * so compare figures of one flavour only).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include "mmuvisor.h"

static long kbytes(void)
{
	char line[256]; long slab = 0, vm = 0, v;
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd >= 0) { write(fd, "2", 1); close(fd); }
	FILE *f = fopen("/proc/meminfo", "r");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Slab: %ld", &v) == 1) slab = v;
		if (sscanf(line, "VmallocUsed: %ld", &v) == 1) vm = v;
	}
	fclose(f);
	return (slab + vm) * 1024;
}

static void tr(const char *file, const char *val)
{
	char p[256]; snprintf(p, sizeof(p), "/sys/kernel/tracing/%s", file);
	int fd = open(p, O_WRONLY | O_TRUNC);
	if (fd < 0 || write(fd, val, strlen(val)) < 0) perror(p);
	close(fd);
}

/* Longest mmv_invalidate in the trace, in us. */
static double trace_max(void)
{
	char line[512]; double max = 0, v;
	FILE *f = fopen("/sys/kernel/tracing/trace", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *bar = strchr(line, '|');
		if (!bar || !strstr(line, "mmv_invalidate")) continue;
		char *p = line; while (*p && (*p < '0' || *p > '9') ) p++;
		/* "  1)   4.839 us    |  mmv_invalidate();" : the number before "us" */
		char *us = strstr(line, " us ");
		if (!us) continue;
		char *s = us; while (s > line && s[-1] != ' ' && s[-1] != '!' && s[-1] != '+' && s[-1] != '#' && s[-1] != '*' && s[-1] != '@' && s[-1] != '$') s--;
		if (sscanf(s, "%lf", &v) == 1 && v > max) max = v;
	}
	if (f) fclose(f);
	return max;
}

static int attach(int fd, uint64_t a, uint64_t len)
{
	uint64_t buf[4] = { a, len, 0, 0 };
	return ioctl(fd, MMUVISOR_IOC_ATTACH, buf);
}

static int range(int fd, unsigned long req, uint64_t a, uint64_t n)
{
	struct mmuvisor_range r = { .addr = a, .npages = n };
	if (ioctl(fd, req, &r)) { perror("range ioctl"); exit(1); }
	return r.count;
}

static char *region(uint64_t n)
{
	char *p = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(p, n * 4096, MADV_NOHUGEPAGE);
	for (uint64_t i = 0; i < n; i++) p[i * 4096] = 1;
	return p;
}

static double callback(uint64_t n, int convert_all)
{
	int fd = open("/dev/mmuvisor", O_RDWR | O_NONBLOCK);
	char *p = region(n);
	uint64_t a = (uint64_t)p;
	if (attach(fd, a, n * 4096)) { perror("attach"); exit(1); }
	if (convert_all) {
		for (uint64_t i = 0; i < n; i += 65536) range(fd, MMUVISOR_IOC_MAKE_EXCLUSIVE, a + i * 4096, n - i < 65536 ? n - i : 65536);
		for (uint64_t i = 0; i < n; i += 100) if (i + 1 < n) range(fd, MMUVISOR_IOC_RELEASE, a + (i + 1) * 4096, (n - i - 1) < 99 ? n - i - 1 : 99);
	} else {
		for (uint64_t i = 0; i < n; i += 100) range(fd, MMUVISOR_IOC_MAKE_EXCLUSIVE, a + i * 4096, 1);
	}
	tr("trace", "");
	tr("tracing_on", "1");
	madvise(p, n * 4096, MADV_DONTNEED);
	tr("tracing_on", "0");
	double m = trace_max();
	close(fd);
	munmap(p, n * 4096);
	sleep(1);
	return m;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], 0, 0) : 65536;
	int fds[32];
	long b0 = kbytes();
	for (int i = 0; i < 32; i++) fds[i] = open("/dev/mmuvisor", O_RDWR);
	long b1 = kbytes();
	for (int i = 0; i < 32; i++) close(fds[i]);
	printf("FIGURE open without ATTACH: %.1f KiB per file\n", (b1 - b0) / 32.0 / 1024);

	char *p = region(n);
	uint64_t a = (uint64_t)p;
	int fd = open("/dev/mmuvisor", O_RDWR | O_NONBLOCK);
	long base = kbytes();
	if (attach(fd, a, n * 4096)) { perror("attach"); return 1; }
	long att = kbytes();
	uint64_t c = 0;
	for (uint64_t i = 0; i < n; i += 65536) c += range(fd, MMUVISOR_IOC_MAKE_EXCLUSIVE, a + i * 4096, n - i < 65536 ? n - i : 65536);
	long held = kbytes();
	for (uint64_t i = 0; i < n; i += 65536) range(fd, MMUVISOR_IOC_RELEASE, a + i * 4096, n - i < 65536 ? n - i : 65536);
	long rel = kbytes();
	ioctl(fd, MMUVISOR_IOC_DETACH);
	long det = kbytes();
	printf("FIGURE %lu pages (%lu converted): ATTACH %.1f KiB; held %.1f MiB (%.1f B/page); released %.1f MiB (%.1f B/page); after DETACH %.1f KiB\n",
	       n, c, (att - base) / 1024.0, (held - att) / 1048576.0, (double)(held - att) / n,
	       (rel - att) / 1048576.0, (double)(rel - att) / n, (det - base) / 1024.0);
	close(fd);
	munmap(p, n * 4096);

	tr("tracing_on", "0");
	tr("current_tracer", "nop");
	tr("set_ftrace_filter", "mmv_invalidate");
	tr("current_tracer", "function_graph");
	sleep(2);	/* let RCU free the first context's nodes */
	double few = callback(n, 0), many = callback(n, 1);
	sleep(2);
	double few2 = callback(n, 0), many2 = callback(n, 1);
	few = few < few2 ? few : few2;
	many = many < many2 ? many : many2;
	tr("current_tracer", "nop");
	printf("FIGURE %lu pages, 1%% held: longest mmv_invalidate %.1f us after converting all and releasing 99%%, %.1f us when only the 1%% was converted\n", n, many, few);
	return 0;
}
