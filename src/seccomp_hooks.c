/* SPDX-License-Identifier: MIT */
/*
 * The program installs a seccomp filter: prctl(PR_SET_SECCOMP) (OpenSSH's
 * sandbox) or syscall(SYS_seccomp, SECCOMP_SET_MODE_*) (libseccomp). Before the
 * filter goes in, sandbox.c runs it over the calls that map secret memory; if one
 * would be fatal, the arena maps a reserve now and no chunk later (sandbox.h).
 * A filter loaded by a raw system call instruction is not seen.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "arena.h"
#include "compiler.h"
#include "log.h"
#include "sandbox.h"

#define SM_EXPORT __attribute__((visibility("default")))

typedef int (*prctl_fn)(int, unsigned long, unsigned long, unsigned long, unsigned long);
typedef long (*syscall_fn)(long, long, long, long, long, long, long);
static prctl_fn real_prctl;
static syscall_fn real_syscall;

static void *next(void *const *slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (!f && (f = dlsym(RTLD_NEXT, name)) != NULL)
		__atomic_store_n((void **)slot, f, __ATOMIC_RELEASE);
	return f;
}
#define NEXT(var, name) ((__typeof__(var))next((void *const *)&(var), name))

void sm_seccomp_hooks_init(void)
{
	NEXT(real_prctl, "prctl");
	NEXT(real_syscall, "syscall");
}

/* Whether [p, p+len) of the program's memory can be read: the filter is the
 * program's, and a bad pointer must be the kernel's EFAULT, not a crash here.
 * Under an earlier filter the check's own call (process_vm_readv) may be fatal:
 * then the pointer is taken as it is. */
static bool readable(const void *p, size_t len)
{
	if (__atomic_load_n(&sm_sandboxed, __ATOMIC_RELAXED))
		return p != NULL;
	char buf[512];
	for (size_t off = 0; off < len; off += sizeof(buf)) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);
		struct iovec local = { buf, n }, remote = { (char *)p + off, n };
		if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != (ssize_t)n)
			return false;
	}
	return true;
}

/* The program's filter, checked readable; NULL if it is not. */
static const struct sock_fprog *filter_of(const void *uprog)
{
	const struct sock_fprog *p = uprog;
	if (!readable(p, sizeof(*p)) || !p->len || p->len > BPF_MAXINSNS ||
	    !readable(p->filter, (size_t)p->len * sizeof(struct sock_filter)))
		return NULL;
	return p;
}

/* Before a filter (strict: no program) is installed: whether the arena may go on
 * mapping chunks under it; maps the reserve if not. */
struct pending {
	bool ok;
	const char *refused;
};

static struct pending before_filter(bool strict, const void *uprog)
{
	struct pending r = { false, "a call (the filter could not be read)" };
	int saved = errno;
	if (strict) {
		r.refused = "everything but read, write and exit (strict mode)";
	} else {
		const struct sock_fprog *p = filter_of(uprog);
		if (p)
			r.ok = sm_sandbox_allows_chunks(p, &r.refused);
	}
	if (!r.ok)
		sm_arena_sandbox_reserve();
	errno = saved;
	return r;
}

SM_EXPORT int prctl(int option, ...)
{
	va_list ap;
	va_start(ap, option);
	unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
	unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
	va_end(ap);
	prctl_fn f = NEXT(real_prctl, "prctl");
	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	if (likely(option != PR_SET_SECCOMP) ||
	    (a2 != SECCOMP_MODE_STRICT && a2 != SECCOMP_MODE_FILTER))
		return f(option, a2, a3, a4, a5);
	struct pending p = before_filter(a2 == SECCOMP_MODE_STRICT, (const void *)a3);
	int r = f(option, a2, a3, a4, a5);
	if (r == 0)
		sm_sandbox_installed(p.ok, p.refused);
	return r;
}

SM_EXPORT long syscall(long nr, ...)
{
	va_list ap;
	va_start(ap, nr);
	long a[6];
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	syscall_fn f = NEXT(real_syscall, "syscall");
	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	if (likely(nr != SYS_seccomp) ||
	    (a[0] != SECCOMP_SET_MODE_STRICT && a[0] != SECCOMP_SET_MODE_FILTER))
		return f(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	struct pending p = before_filter(a[0] == SECCOMP_SET_MODE_STRICT, (const void *)a[2]);
	long r = f(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	/* 0, or with SECCOMP_FILTER_FLAG_NEW_LISTENER the listener's descriptor */
	if (r >= 0)
		sm_sandbox_installed(p.ok, p.refused);
	return r;
}
