/* SPDX-License-Identifier: MIT */
/*
 * The shim's fork handlers come before everyone else's. glibc runs child handlers
 * in the order they were registered and prepare handlers in reverse, so a handler
 * registered before the shim's would run in the child while it still shares the
 * parent's secret pages and arena (it could write into the parent's secrets, or
 * allocate from the parent's free lists), and its prepare would run after the
 * arena's locks are taken. A library constructor runs before the shim's, and a
 * program may register before its first secret: so the shim registers one set of
 * handlers at its earliest start-up and from its own __register_atfork (what
 * pthread_atfork of libc_nonshared calls) and pthread_atfork (the old symbol),
 * before the first foreign registration goes through. The handlers do nothing for
 * a part (arena, routing tables, audit log) that is not set up yet.
 *
 * Never calls malloc itself; dlvsym's allocations on first use are the next
 * allocator's (re-entry guard).
 */
#include "config.h"
#include "atfork.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <sys/types.h>
#include <unistd.h>

#include "arena.h"
#include "audit.h"
#include "guard.h"
#include "log.h"
#include "route.h"

#define SM_EXPORT __attribute__((visibility("default")))

typedef int (*register_fn)(void (*)(void), void (*)(void), void (*)(void), void *);

extern void *__dso_handle;
SM_EXPORT int __register_atfork(void (*pre)(void), void (*par)(void), void (*chi)(void),
				void *dso);

bool sm_atfork_route;
static bool route_held; /* this fork's prepare took the routing locks */

static void prepare(void)
{
	/* The arena's locks before the metadata lock (arena growth takes it). */
	sm_arena_fork_prepare();
	route_held = __atomic_load_n(&sm_atfork_route, __ATOMIC_ACQUIRE);
	if (route_held)
		sm_route_fork_prepare();
}

static void parent(void)
{
	if (route_held)
		sm_route_fork_parent();
	sm_arena_fork_parent();
}

static void child(void)
{
	sm_audit_fork_child();
	if (route_held)
		sm_route_fork_child();
	sm_arena_fork_child();
}

typedef pid_t (*fork_fn)(void);
static fork_fn real_fork; /* resolved at start-up: _Fork may run in a signal handler */

static fork_fn find_fork(void)
{
	unsigned guard = sm_thread.in_shim; /* restored: the shim's start-up resets it */
	sm_thread.in_shim = guard + 1;
	fork_fn f = (fork_fn)dlvsym(RTLD_NEXT, "_Fork", "GLIBC_2.34");
	sm_thread.in_shim = guard;
	return f;
}

/* _Fork runs no fork handlers, and may be called from a signal handler that
 * interrupted a holder of the arena's locks: it never waits for one. With every
 * lock free it does what fork() does (the prepare, parent and child handlers,
 * SECRETMEM_FORK as set); with one busy the child starts with an empty arena, as
 * with SECRETMEM_FORK=drop, so it never shares the parent's secret pages. */
SM_EXPORT pid_t _Fork(void)
{
	fork_fn f = __atomic_load_n(&real_fork, __ATOMIC_ACQUIRE);
	if (!f && !(f = find_fork())) {
		errno = ENOSYS;
		return -1;
	}
	bool route = __atomic_load_n(&sm_atfork_route, __ATOMIC_ACQUIRE);
	bool held = !route || sm_route_fork_tryprepare();
	if (held && !sm_arena_fork_tryprepare()) {
		if (route)
			sm_route_fork_parent();
		held = false;
	}
	pid_t pid = f();
	int saved = errno;
	if (pid != 0) {
		if (held) {
			if (route)
				sm_route_fork_parent();
			sm_arena_fork_parent();
		}
	} else {
		sm_audit_fork_child();
		if (route)
			sm_route_fork_child();
		if (held)
			sm_arena_fork_child();
		else
			sm_arena_fork_child_drop();
	}
	errno = saved;
	return pid;
}

static register_fn real_register(void)
{
	static register_fn real;
	register_fn f = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
	if (!f) {
		/* Restored, not decremented: a first allocation here may start the
		 * shim, whose start-up sets the guard and clears it. */
		unsigned guard = sm_thread.in_shim;
		sm_thread.in_shim = guard + 1;
		f = (register_fn)dlvsym(RTLD_NEXT, "__register_atfork", "GLIBC_2.3.2");
		if (!f)
			f = (register_fn)dlsym(RTLD_NEXT, "__register_atfork");
		sm_thread.in_shim = guard;
		if (!f)
			sm_die("cannot find the next __register_atfork: cannot protect secret "
			       "memory across fork()");
		__atomic_store_n(&real, f, __ATOMIC_RELEASE);
	}
	return f;
}

enum { REG_NONE, REG_BUSY, REG_DONE };
static int reg_state;
static pthread_t reg_thread;

void sm_atfork_init(void)
{
	int s = __atomic_load_n(&reg_state, __ATOMIC_ACQUIRE);
	if (s == REG_DONE)
		return;
	if (s == REG_NONE &&
	    __atomic_compare_exchange_n(&reg_state, &s, REG_BUSY, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		reg_thread = pthread_self();
		__atomic_store_n(&real_fork, find_fork(), __ATOMIC_RELEASE);
		if (real_register()(prepare, parent, child, &__dso_handle) != 0)
			sm_die("pthread_atfork failed: cannot protect secret memory across fork()");
		__atomic_store_n(&reg_state, REG_DONE, __ATOMIC_RELEASE);
		return;
	}
	/* Our own registration, re-entered (dlvsym's first allocation starts the
	 * shim): the outer call registers. Another thread waits for it. */
	if (pthread_equal(__atomic_load_n(&reg_thread, __ATOMIC_ACQUIRE), pthread_self()))
		return;
	while (__atomic_load_n(&reg_state, __ATOMIC_ACQUIRE) != REG_DONE)
		sched_yield();
}

SM_EXPORT int __register_atfork(void (*pre)(void), void (*par)(void), void (*chi)(void),
				void *dso)
{
	int saved = errno;
	sm_atfork_init();
	errno = saved;
	return real_register()(pre, par, chi, dso);
}

/* Programs linked against glibc before 2.34 call this one. */
SM_EXPORT int pthread_atfork(void (*pre)(void), void (*par)(void), void (*chi)(void))
{
	return __register_atfork(pre, par, chi, NULL);
}
