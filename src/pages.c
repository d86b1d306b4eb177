/* SPDX-License-Identifier: MIT */
/*
 * The kernel interface under the arena: memfd_secret(2) files and their mappings,
 * the anonymous mlock fallback, the fork copies, and the capability check.
 *
 * Facts this relies on (docs/kernel-facts.md, checked by tests/kernel_facts): a secretmem file's size can be set
 * once; mappings must be MAP_SHARED; the whole mapping is charged to
 * RLIMIT_MEMLOCK at mmap time (EAGAIN over it); a page is faulted in (and taken out
 * of the direct map) on first access, read or write; MAP_FIXED into a PROT_NONE
 * reservation works. Never calls malloc; never touches a page it was not asked to.
 */
#include "config.h"
#include "pages.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

#define RW (PROT_READ | PROT_WRITE)

size_t sm_pages_size(void)
{
	static size_t ps;
	if (!__atomic_load_n(&ps, __ATOMIC_RELAXED)) {
		/* The loader's value: no system call, and safe before anything else runs. */
		unsigned long v = getauxval(AT_PAGESZ);
		long s = v ? (long)v : sysconf(_SC_PAGESIZE);
		__atomic_store_n(&ps, s > 0 ? (size_t)s : 4096, __ATOMIC_RELAXED);
	}
	return __atomic_load_n(&ps, __ATOMIC_RELAXED);
}

int sm_pages_secret_fd(unsigned flags)
{
	long fd = syscall(SM_SYS_MEMFD_SECRET, flags | O_CLOEXEC);
	return fd < 0 ? -errno : (int)fd;
}

void *sm_pages_reserve(size_t *len, size_t min)
{
	for (size_t l = *len; l >= min; l /= 2) {
		void *p = mmap(NULL, l, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p != MAP_FAILED) {
			/* gdb's gcore would otherwise write the whole range (up to 64 GiB) as zeros. */
			madvise(p, l, MADV_DONTDUMP);
			*len = l;
			return p;
		}
	}
	return NULL;
}

int sm_pages_unmap_to_reserved(void *addr, size_t len)
{
	void *p = mmap(addr, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	madvise(p, len, MADV_DONTDUMP); /* a new mapping: the flag must be set again */
	return 0;
}

/* A failed MAP_FIXED may or may not have removed the old mapping (the kernel
 * unmaps before some of its checks): put the reservation back either way, and
 * report the original error. */
static int fail_restore(void *addr, size_t len, int err)
{
	sm_pages_unmap_to_reserved(addr, len);
	return err;
}

int sm_pages_new_file(enum sm_backend b, size_t len)
{
	if (__atomic_load_n(&sm_sandbox_no_chunks, __ATOMIC_ACQUIRE))
		return -EPERM; /* the program's filter would kill the process here */
	int fd = sm_pages_secret_fd(b == SM_BACKEND_SECRET_UNCACHED ? SM_SECRETMEM_UNCACHED : 0);
	if (fd < 0)
		return fd;
	if (ftruncate(fd, (off_t)len) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int sm_pages_map_fd(void *addr, size_t len, int fd, size_t off)
{
	void *p = mmap(addr, len, RW, MAP_SHARED | MAP_FIXED, fd, (off_t)off);
	return p == MAP_FAILED ? -errno : 0;
}

int sm_pages_map_chunk(enum sm_backend b, void *addr, size_t len, bool dontfork)
{
	int err;
	if (b == SM_BACKEND_MLOCK) {
		if (__atomic_load_n(&sm_sandbox_no_chunks, __ATOMIC_ACQUIRE))
			return -EPERM; /* the program's filter would kill the process here */
		void *p = mmap(addr, len, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED)
			return fail_restore(addr, len, -errno);
		if (sm_pages_relock(addr, len) != 0 || madvise(addr, len, MADV_DONTDUMP) != 0)
			return fail_restore(addr, len, -errno);
	} else {
		int fd = sm_pages_new_file(b, len);
		if (fd < 0)
			return fail_restore(addr, len, fd);
		err = sm_pages_map_fd(addr, len, fd, 0);
		close(fd); /* the mapping keeps the file */
		if (err)
			return fail_restore(addr, len, err);
	}
	if (dontfork && madvise(addr, len, MADV_DONTFORK) != 0)
		return fail_restore(addr, len, -errno);
	return 0;
}

int sm_pages_resident(const void *addr, size_t len, unsigned char *vec)
{
	/* A sandbox may kill at mincore (sshd's and systemd's lists lack it): the
	 * callers then treat every page as resident. */
	if (__atomic_load_n(&sm_sandboxed, __ATOMIC_RELAXED))
		return -ENOSYS;
	return mincore((void *)addr, len, vec) == 0 ? 0 : -errno;
}

#if defined(__SANITIZE_THREAD__)
/* The fork snapshot reads memory other threads may be writing, as the kernel's own
 * copy-on-write snapshot of ordinary memory does: racy by nature (a write that
 * races with fork() may or may not reach the child), so hidden from TSan. The
 * attribute keeps the loop uninstrumented and the option keeps GCC from turning
 * it back into a (intercepted) memcpy call. */
__attribute__((no_sanitize_thread, optimize("no-tree-loop-distribute-patterns")))
static void snapshot(char *dst, const char *src, size_t len)
{
	for (size_t i = 0; i < len / sizeof(long); i++)
		((long *)dst)[i] = ((const long *)src)[i];
}
#else
#define snapshot memcpy
#endif

/* The window of the copy's file mapped now: one mapping serves every run that
 * falls in it, however many spans the copy is made of (a fork copied 550 KiB
 * through 119 mmap and munmap pairs when each run had its own). */
static struct {
	int fd;
	size_t off, len;
	char *w;
} win_now = { -1, 0, 0, NULL };

static size_t win_size = 64 * 1024;

size_t sm_pages_copy_window(size_t want)
{
	size_t ps = sm_pages_size(), w = ps;
	while (w < SM_PAGES_COPY_WINDOW_MAX && w * 2 <= want)
		w *= 2;
	win_size = w;
	return w;
}

static int window_at(int fd, size_t off)
{
	if (win_now.w && win_now.fd == fd && win_now.off == off)
		return 0;
	sm_pages_copy_end();
	char *w = mmap(NULL, win_size, RW, MAP_SHARED, fd, (off_t)off);
	if (w == MAP_FAILED)
		return -errno;
	win_now.fd = fd;
	win_now.off = off;
	win_now.len = win_size;
	win_now.w = w;
	return 0;
}

void sm_pages_copy_end(void)
{
	if (win_now.w)
		munmap(win_now.w, win_now.len);
	win_now.w = NULL;
	win_now.fd = -1;
}

/* Copies [src, src+len) into the file at off, through the windows it falls in. */
static int copy_run(int fd, size_t off, const char *src, size_t len)
{
	while (len) {
		size_t wo = off & ~(win_size - 1);
		int err = window_at(fd, wo);
		if (err == -EAGAIN && win_size > sm_pages_size()) {
			/* memlock short of the window (the limit was read before a
			 * privilege drop, or a namespace's capability fooled it):
			 * half as much, down to a page */
			win_size /= 2;
			continue;
		}
		if (err)
			return err;
		size_t n = wo + win_size - off;
		if (n > len)
			n = len;
		snapshot(win_now.w + (off - wo), src, n);
		off += n;
		src += n;
		len -= n;
	}
	return 0;
}

int sm_pages_copy_in(int fd, size_t off, const void *src, size_t len)
{
	const size_t ps = sm_pages_size(), win = win_size;
	unsigned char vec[SM_PAGES_COPY_WINDOW_MAX / 4096];
	const char *s = src;

	for (size_t done = 0; done < len; done += win) {
		size_t n = len - done < win ? len - done : win;
		size_t np = n / ps;
		if (np > sizeof(vec))
			return -EINVAL; /* pages smaller than 4 KiB: not on Linux */
		if (sm_pages_resident(s + done, n, vec) != 0)
			memset(vec, 1, np); /* not known (a sandbox): copy every page */
		for (size_t i = 0; i < np;) {
			if (!(vec[i] & 1)) {
				i++;
				continue;
			}
			size_t j = i;
			while (j < np && (vec[j] & 1))
				j++;
			int err = copy_run(fd, off + done + i * ps, s + done + i * ps, (j - i) * ps);
			if (err)
				return err;
			i = j;
		}
	}
	return 0;
}

/* ONFAULT: lock pages as they are touched rather than populate the whole chunk.
 * Kernels before 4.4 (which have no memfd_secret either, hence this backend) lack
 * mlock2: plain mlock populates, which costs ~1.5 us per page of the chunk, once. */
int sm_pages_relock(void *addr, size_t len)
{
	if (syscall(SYS_mlock2, addr, len, MLOCK_ONFAULT) == 0)
		return 0;
	if (errno == ENOSYS && mlock(addr, len) == 0)
		return 0;
	return -errno;
}

/* Whether the process is in the initial user namespace, the only one whose
 * capabilities the kernel's memlock check counts (capable(), not ns_capable()):
 * there /proc/self/uid_map maps every uid to itself, "0 0 4294967295". Under
 * `unshare -r` or in a rootless container a process holds CAP_IPC_LOCK in its
 * own namespace, and RLIMIT_MEMLOCK still binds it. No /proc: assumed (the
 * common case). Only system calls, no stdio: a statistics report from a
 * signal handler may get here (budget_init). */
static bool init_user_ns(void)
{
	char buf[128];
	int fd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	static const char *const want[] = { "0", "0", "4294967295" };
	const char *p = buf;
	for (size_t i = 0; i < 3; i++) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t len = strspn(p, "0123456789");
		if (len != strlen(want[i]) || strncmp(p, want[i], len) != 0)
			return false;
		p += len;
	}
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	return *p == '\0'; /* one line only */
}

bool sm_pages_cap_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) != 0)
		return false;
	return (data[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32))) && init_user_ns();
}
