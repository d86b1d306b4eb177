/* SPDX-License-Identifier: MIT */
/*
 * pthread_create: what glibc allocates to start a thread (the new thread's TLS
 * vector, from ld.so's _dl_allocate_tls) is its own bookkeeping, never the
 * caller's data. Routing looks through libc and the loader, so without this a
 * tagged program's thread start made that block secret, and it stays live for the
 * life of the process: the arena could never go idle and give its memory back (the
 * kernel refuses to hibernate while secret memory exists). While the real
 * pthread_create runs, this thread's allocations that routing would settle by a
 * stack walk are ordinary; a secretmem_scope_begin() scope still wins.
 *
 * Never calls malloc itself; dlsym's allocations on first use are the shim's.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

#include "guard.h"

#define SM_EXPORT __attribute__((visibility("default")))

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

SM_EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
			     void *arg)
{
	static create_fn real;
	create_fn f = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
	if (!f) {
		f = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
		if (!f)
			return ENOSYS; /* no pthread_create after the shim: cannot happen with glibc */
		__atomic_store_n(&real, f, __ATOMIC_RELEASE);
	}
	sm_thread_starting++;
	int r = f(t, attr, fn, arg);
	sm_thread_starting--;
	return r;
}
