/* SPDX-License-Identifier: MIT */
/*
 * Routing: is this allocation secret? Decided from the call site (the first frame
 * outside the allocation machinery: libc, the loader, libstdc++, this shim and the
 * SECRETMEM_WRAPPERS functions), the rules of SECRETMEM_LIBS / SECRETMEM_SITES /
 * SECRETMEM_DEPTH, annotated objects (SECRETMEM_ANNOTATE_LIBRARY) and the calling
 * thread's secretmem scopes.
 *
 * It runs on every allocation while rules are active, so what a code address means
 * is cached: one 64-bit word per address, read without locks, holding the address,
 * its class and the generation of the object table. Every dlopen, dlmopen and
 * dlclose turns the cache off until the table is brought up to date, and dlclose
 * flushes it before and after the real call, so nothing stale survives (see
 * docs/attribution-loader.md). The caller holds the re-entry guard (guard.h), so what
 * the unwinder or the loader allocate while we look goes to the next allocator.
 */
#ifndef SM_ROUTE_H
#define SM_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "route_cache.h"

/* Everything declared here is internal to the library (direct, not GOT, access). */
#pragma GCC visibility push(hidden)

/* What a code address is. */
enum sm_class { SM_ORDINARY = 0, SM_SECRET = 1, SM_MACHINERY = 2 };

extern uint64_t sm_route_cache[SM_CACHE_SLOTS];
extern uint64_t sm_route_tag;      /* generation, in the bits above the class */
/* sm_route_tag when a cached class settles a call, else all ones (never matches):
 * with SECRETMEM_LIBS=* or SECRETMEM_DEPTH > 0 every call takes sm_route_decide. */
extern uint64_t sm_route_fast_tag;

/* The fast path's answer for an allocation whose caller returns to pc:
 * SM_ORDINARY or SM_SECRET when the cache settles it, else -1. One probe. */
static inline int sm_route_fast(uintptr_t pc)
{
	uint64_t want = pc | __atomic_load_n(&sm_route_fast_tag, __ATOMIC_RELAXED);
	uint64_t e = __atomic_load_n(&sm_route_cache[sm_cache_slot(pc)], __ATOMIC_RELAXED);
	if (e == want)
		return SM_ORDINARY;
	if (e == (want | ((uint64_t)SM_SECRET << SM_PC_BITS)))
		return SM_SECRET;
	return -1;
}

/* The cached class of a code address, or -1 when it is not cached yet. */
static inline int sm_route_lookup(uintptr_t pc)
{
	uint64_t tag = sm_route_tag;
	unsigned i = sm_cache_slot(pc);
	for (unsigned k = 0; k < SM_CACHE_PROBE; k++) {
		uint64_t e = __atomic_load_n(&sm_route_cache[(i + k) & (SM_CACHE_SLOTS - 1)],
					     __ATOMIC_RELAXED);
		int cls = sm_cache_match(e, pc, tag);
		if (cls >= 0)
			return cls;
		if (!e)
			break;
	}
	return -1;
}

/* Loads the unwinder the stack walks use (libgcc's), once; stops the program if it
 * cannot. Called as routing starts, before any walk. */
void sm_route_load_unwinder(void);

/* Resolves the rules against the objects loaded now; returns whether any rule or
 * annotation exists (then the arena is needed). Called once at start-up. */
bool sm_route_init(void);

/* The full decision for an allocation whose immediate caller returns to ra: classifies
 * what is not cached and walks the stack when the caller is machinery or
 * SECRETMEM_DEPTH asks for it. */
bool sm_route_decide(void *ra);

/* The decision for a call made while the thread is already inside the routing
 * code (a signal handler, or what the unwinder allocates): scopes, SECRETMEM_LIBS=*
 * the cache, and the object table only if its lock is free (the interrupted code
 * may hold it): an address not cached while the table is busy counts as secret,
 * unless it lies in the routing code's own helpers (libc, the loader, the unwinder,
 * the shim). */
bool sm_route_reentered(uintptr_t pc);

/* An object was loaded that the table must know now (an annotated library's
 * constructor): rescan the loaded objects. */
void sm_route_objects_changed(void);

/* Makes the function whose code holds fn machinery to look through, like a
 * SECRETMEM_WRAPPERS function: its allocations count as its caller's. For the
 * allocation functions a program gives OpenSSL (CRYPTO_set_mem_functions).
 * 1: done (or its object is tagged already); 0: fn's extent is not known (its
 * unwind table); -1: routing is not running, or no rule is set. */
int sm_route_look_through(uintptr_t fn);

/* A dlopen or dlmopen is about to run: until the next rescan (on the next routed
 * call), nothing cached is trusted. Lock-free; called outside the loader. */
void sm_route_loading(void);

/* Program code is about to look into what it loaded (dlsym): the table is
 * brought up to date with the loader's counters now, so that a new object is
 * registered (and a tagged one's relocations redirected) before any of its
 * functions can be called through the pointer dlsym returns. Called from
 * program context. */
void sm_route_settle(void);

/* Whether the code address pc (a return address) lies in a tagged object (a
 * SECRETMEM_LIBS match, or annotated): registers the object if the table does not
 * know it yet. Called from program context, under the re-entry guard. */
bool sm_route_tagged_object(uintptr_t pc);

/* dlclose: begin before the real call, !begin after it. In between, nothing is
 * cached; the cache is flushed at both ends. */
void sm_route_closing(bool begin);

/* fork: the object table's lock is held across fork() (then the metadata lock,
 * which the table allocates under); the child drops whatever rescan the parent
 * had pending (another thread may have held the loader's lock). */
void sm_route_fork_prepare(void);
void sm_route_fork_parent(void);
bool sm_route_fork_tryprepare(void);
void sm_route_fork_child(void);

#pragma GCC visibility pop

#endif
