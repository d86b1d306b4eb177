/* SPDX-License-Identifier: MIT */
/*
 * The kernel facts the arena is built on (docs/kernel-facts.md), checked on the
 * running kernel: one TAP line per fact, so that a kernel that behaves otherwise
 * fails `make check` instead of silently breaking an assumption. A kernel without
 * memfd_secret skips every line. With -v it also prints the costs the design
 * leans on (first touch of a secret and of an anonymous page, the loader's look-up
 * functions), which docs/kernel-facts.md quotes; those are never asserted.
 *
 *   kernel_facts [-v]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

static int n_test;
static int failed;

static void check(bool ok, const char *what)
{
	printf("%s %d - %s\n", ok ? "ok" : "not ok", ++n_test, what);
	failed |= !ok;
}

/* VmLck of /proc/self/status, in KiB (-1 if unknown). */
static long vm_locked_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmLck:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

static int secret_fd(void)
{
	return (int)syscall(SYS_memfd_secret, O_CLOEXEC);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* How many of the n pages at p are resident (mincore). */
static int resident(const unsigned char *p, size_t n, size_t page)
{
	unsigned char vec[64];
	int k = 0;
	if (n > sizeof(vec) || mincore((void *)(uintptr_t)p, n * page, vec) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		k += vec[i] & 1;
	return k;
}

/* ns per page to fault in n pages of a fresh mapping by writing one byte each. */
static double first_touch(unsigned char *p, size_t n, size_t page)
{
	double t = now_ns();
	for (size_t i = 0; i < n; i++)
		p[i * page] = 1;
	return (now_ns() - t) / (double)n;
}

static int count_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)info;
	(void)size;
	++*(int *)data;
	return 0;
}

static void costs(size_t page)
{
	enum { PAGES = 256 };
	int fd = secret_fd();
	if (fd < 0 || ftruncate(fd, PAGES * page))
		return;
	unsigned char *s = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	unsigned char *a = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED || a == MAP_FAILED)
		return;
	printf("# first touch, secret page:    %8.0f ns\n", first_touch(s, PAGES, page));
	printf("# first touch, anonymous page: %8.0f ns\n", first_touch(a, PAGES, page));
	double t = now_ns();
	munmap(s, PAGES * page);
	close(fd);
	printf("# munmap+close of %d touched secret pages: %.0f us\n", PAGES, (now_ns() - t) / 1e3);
	/* the same pages faulted in by one read(2) from /dev/zero: the kernel's cost
	 * is the page's, not the user fault's */
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if ((fd = secret_fd()) >= 0 && zero >= 0 && ftruncate(fd, PAGES * page) == 0 &&
	    (s = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) != MAP_FAILED) {
		t = now_ns();
		bool all = read(zero, s, PAGES * page) == (ssize_t)(PAGES * page);
		if (all)
			printf("# fault-in by read(2), secret page: %6.0f ns\n", (now_ns() - t) / PAGES);
		munmap(s, PAGES * page);
	}
	if (fd >= 0)
		close(fd);
	if (zero >= 0)
		close(zero);
	t = now_ns();

	enum { N = 100000 };
	int (*find)(void *, void *) = (int (*)(void *, void *))dlsym(RTLD_DEFAULT, "_dl_find_object");
	if (find) {
		unsigned char dlfo[128];
		t = now_ns();
		for (int i = 0; i < N; i++)
			find((void *)costs, dlfo);
		printf("# _dl_find_object:             %8.1f ns\n", (now_ns() - t) / N);
	}
	int objects = 0;
	t = now_ns();
	for (int i = 0; i < N; i++)
		dl_iterate_phdr(count_cb, &objects);
	printf("# dl_iterate_phdr (%d objects): %6.1f ns\n", objects / N, (now_ns() - t) / N);
}

int main(int argc, char **argv)
{
	bool verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int fd = secret_fd();
	if (fd < 0) {
		printf("1..0 # SKIP memfd_secret: %s\n", strerror(errno));
		return 0;
	}
	int e;

	e = syscall(SYS_memfd_secret, 0x2) < 0 ? errno : 0;
	check(e == EINVAL, "the uncached flag of the 2020 proposal (0x2) is EINVAL");

	check(ftruncate(fd, 4 * page) == 0, "the first ftruncate sets the size");
	e = ftruncate(fd, 8 * page) ? errno : 0;
	check(e == EINVAL, "a second ftruncate is EINVAL");

	char c = 0;
	check(read(fd, &c, 1) < 0 && write(fd, &c, 1) < 0, "read and write on the fd fail");

	void *m = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	check(m == MAP_FAILED && errno == EINVAL, "MAP_PRIVATE is EINVAL");
	m = mmap(NULL, 4 * page, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
	check(m == MAP_FAILED, "PROT_EXEC is refused");

	/* The arena's layout: a PROT_NONE reservation, chunks mapped into it. */
	unsigned char *res = mmap(NULL, 16 * page, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	unsigned char *p = mmap(res + 4 * page, 4 * page, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_FIXED, fd, 0);
	check(p == res + 4 * page, "MAP_FIXED over a PROT_NONE reservation works");
	if (p != res + 4 * page)
		return 1;
	p[0] = 0x5a;
	memcpy(p + 100, "kernel-facts-secret", 20);

	int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	char buf[32];
	ssize_t r = pread(mem, buf, sizeof(buf), (off_t)(uintptr_t)(p + 100));
	e = r < 0 ? errno : 0;
	check(r < 0 && e == EIO, "/proc/self/mem read of a secret page is EIO");
	r = pread(mem, buf, 8, (off_t)(uintptr_t)&page);
	check(r == 8, "/proc/self/mem reads ordinary memory (the control)");
	close(mem);

	struct iovec local = { buf, 20 }, remote = { p + 100, 20 };
	check(process_vm_readv(getpid(), &local, 1, &remote, 1, 0) < 0,
	      "process_vm_readv of a secret page fails");

	check(madvise(p, page, MADV_DONTNEED) != 0,
	      "MADV_DONTNEED fails: pages cannot be given back piecemeal");
	check(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, page) != 0,
	      "fallocate(PUNCH_HOLE) fails");
	check(madvise(p, page, MADV_WIPEONFORK) != 0, "MADV_WIPEONFORK is refused (shared mapping)");

	/* No call faults a range in at once (the arena would populate chunks so):
	 * page pinning refuses secret memory; read(2) into the pages faults them in,
	 * one at a time, in the kernel (costs() times it). */
	int fd2 = secret_fd();
	unsigned char *pq = fd2 >= 0 && ftruncate(fd2, 4 * page) == 0
				   ? mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd2, 0)
				   : MAP_FAILED;
	if (pq == MAP_FAILED)
		return 1;
	check(resident(pq, 4, page) == 0, "MAP_POPULATE faults no page in");
	e = madvise(pq, 4 * page, MADV_POPULATE_WRITE) ? errno : 0;
	check(e == EINVAL, "MADV_POPULATE_WRITE is EINVAL");
	e = madvise(pq, 4 * page, MADV_POPULATE_READ) ? errno : 0;
	check(e == EINVAL, "MADV_POPULATE_READ is EINVAL");
	check(madvise(pq, 4 * page, MADV_WILLNEED) != 0 || resident(pq, 4, page) == 0,
	      "MADV_WILLNEED faults no page in");
	check(fallocate(fd2, 0, 0, 4 * page) != 0, "fallocate (allocate) fails");
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	check(zero >= 0 && read(zero, pq, 4 * page) == (ssize_t)(4 * page) && resident(pq, 4, page) == 4,
	      "read(2) into the pages faults them in");
	if (zero >= 0)
		close(zero);
	munmap(pq, 4 * page);
	close(fd2);

	/* VmFlags of the mapping: locked (lo) and not dumped (dd). */
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, lo = false, dd = false;
	unsigned long want = (unsigned long)(uintptr_t)p;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, ' ') &&
		    line[strspn(line, "0123456789abcdef")] == '-') {
			in = a == want;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			lo = strstr(line, " lo") != NULL;
			dd = strstr(line, " dd") != NULL;
		}
	}
	if (f)
		fclose(f);
	check(lo && dd, "smaps VmFlags of the mapping have lo and dd");

	/* MAP_SHARED: a child's write reaches the parent. */
	pid_t pid = fork();
	if (pid == 0) {
		p[1] = 0x77;
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	check(p[1] == 0x77, "after fork the child's writes reach the parent (shared pages)");

	check(madvise(p, 4 * page, MADV_DONTFORK) == 0, "MADV_DONTFORK works");
	pid = fork();
	if (pid == 0)
		_exit(madvise(p, page, MADV_NORMAL) == 0 ? 1 : 0); /* no mapping: ENOMEM */
	waitpid(pid, &st, 0);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "with MADV_DONTFORK the child has no mapping");

	/* compact (chunk.c): mremap with an old size of 0 maps a shared mapping's
	 * pages a second time, charged as locked memory while both exist; the
	 * reservation then replaces the first, with no hole between. */
	long lck0 = vm_locked_kb();
	unsigned char *q = mremap(p, 0, page, MREMAP_MAYMOVE | MREMAP_FIXED, res + 12 * page);
	long lck1 = vm_locked_kb();
	check(q == res + 12 * page && q[0] == 0x5a && memcmp(q + 100, "kernel-facts-secret", 20) == 0,
	      "mremap with old size 0 maps a secret page a second time, contents and all");
	check(lck1 - lck0 == (long)(page >> 10), "the second mapping is charged as locked memory");
	if (q == res + 12 * page) {
		q[1] = 0x33;
		check(p[1] == 0x33, "both mappings reach the same page");
		check(mmap(p, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
			   -1, 0) == p && q[0] == 0x5a && vm_locked_kb() == lck0,
		      "the reservation replaces the first mapping: the page stays, charged once");
		mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
		r = pread(mem, buf, 8, (off_t)(uintptr_t)q);
		e = r < 0 ? errno : 0;
		close(mem);
		check(r < 0 && e == EIO, "/proc/self/mem read of the page at its new place is EIO");
	}

	munmap(res, 16 * page);
	close(fd);
	if (verbose)
		costs(page);
	printf("1..%d\n", n_test);
	return failed;
}
