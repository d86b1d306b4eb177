/* SPDX-License-Identifier: MIT */
/*
 * The calling thread's state, tested as one word on the allocation fast path: the
 * re-entry guard (in_shim: while it is non-zero, what this thread allocates goes to
 * the next allocator, so that the shim's own helpers, the unwinder and the loader
 * never re-enter it) and the depth of secretmem_scope_begin(). Any non-zero field
 * sends a call to the slow path.
 *
 * A module that calls out to code which may allocate while it works for the shim
 * takes the guard itself (in_shim++ around the call); the interposed functions of
 * preload.c take it on every path into the arena and the routing code.
 */
#ifndef SM_GUARD_H
#define SM_GUARD_H

#include <stdint.h>

/* Everything declared here is internal to the library (direct, not GOT, access). */
#pragma GCC visibility push(hidden)

union sm_thread {
	struct {
		unsigned in_shim;   /* re-entry guard */
		unsigned scope;     /* nesting depth of secretmem_scope_begin() */
	};
	uint64_t any;
};
extern __thread union sm_thread sm_thread __attribute__((tls_model("initial-exec")));

/* Non-zero while this thread is inside pthread_create (thread_start.c): what glibc
 * allocates there that routing would settle by a stack walk is ordinary. */
extern __thread unsigned sm_thread_starting __attribute__((tls_model("initial-exec")));

#pragma GCC visibility pop

#endif
