/* SPDX-License-Identifier: MIT */
/*
 * The secret arena: every secret block lives here, in pages that pages.c obtains
 * from memfd_secret (or, where the user allows it, from locked anonymous memory).
 *
 * One large address range is reserved at start-up (PROT_NONE, costs no memlock);
 * secret chunks are mapped into it as needed, so "is this pointer secret?" is the
 * one range check of sm_arena_owns(). Unmapped holes between chunks are guard pages;
 * chunks side by side form one range, in which a block may span chunks.
 *
 * Invariants:
 *  - a block is zero when handed out (calloc needs no second clear) and is wiped
 *    with explicit_bzero when freed and when realloc moves it;
 *  - metadata outside secret memory holds no secret byte;
 *  - misuse of a secret block (double free, interior pointer, realloc of a freed
 *    block) aborts with a message naming it;
 *  - out of secret memory: NULL with errno = ENOMEM, never ordinary memory;
 *  - never calls malloc.
 */
#ifndef SM_ARENA_H
#define SM_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Everything declared here is internal to the library (direct, not GOT, access). */
#pragma GCC visibility push(hidden)

/* The reserved range [sm_arena_base, +sm_arena_reserved), sized from the budget
 * and RLIMIT_AS; sm_arena_span: its part up to the highest chunk so far (grows,
 * never shrinks), where every pointer has a page-map entry. All zero until
 * sm_arena_init succeeds. Nothing else is ever mapped in the reservation. */
extern uintptr_t sm_arena_base;
extern uintptr_t sm_arena_span;
extern uintptr_t sm_arena_reserved;

/* sm_arena_span is stored atomically under the page lock; a plain read here lets
 * the compiler fold it into the compare (one instruction less per free). A thread
 * that holds a pointer into a new chunk got it after that store. */
static inline bool sm_arena_owns(const void *p)
{
#if defined(__SANITIZE_THREAD__)
	return (uintptr_t)p - sm_arena_base < __atomic_load_n(&sm_arena_span, __ATOMIC_RELAXED);
#else
	return (uintptr_t)p - sm_arena_base < sm_arena_span;
#endif
}

/* Reserves the range and probes the backend chosen by sm_opt (mode, fallback, max):
 * maps the first chunk so that a missing kernel feature or a memlock limit of zero
 * is found now. On a failure that the options do not allow to fall back from,
 * prints one line naming the cause and what to do, and ends the process (sm_die).
 * Idempotent and thread-safe. */
void sm_arena_init(void);

/* A seccomp filter the program installs will refuse the calls that map secret
 * memory: map a reserve first (sandbox.c). */
void sm_arena_sandbox_reserve(void);

/* For the unit tests, before sm_arena_init: run the arena on pages of this size
 * (a power of two, a multiple of the system's, at most 64 KiB) instead of the
 * system's, as on a kernel with larger pages. */
void sm_arena_set_page_size(size_t size);

/* Allocation. size 0 gives a unique minimal block. align is a power of two
 * (the caller checks); any alignment up to at least 64 KiB works. */
void *sm_arena_malloc(size_t size);
void *sm_arena_memalign(size_t align, size_t size);

/* Whole zeroed pages of secret memory for the shim's own use (the standard
 * streams' buffers): not among the program's allocations in the statistics, nor
 * for the arena's idle release. NULL when there are none. sm_arena_own_free
 * wipes and frees them (size as asked). */
void *sm_arena_own_pages(size_t size);
void sm_arena_own_free(void *p, size_t size);
/* streams.c's: hold runs (no lock held) after the first secret allocation, and
 * the first after an idle release; give_back when no secret block is live,
 * before the chunks are unmapped. Set before sm_arena_init. */
void sm_arena_streams_hooks(void (*hold)(void), void (*give_back)(void));

/* p must be owned (sm_arena_owns). */
void sm_arena_free(void *p);
/* Grows or shrinks in place where possible, else moves within the arena (wiping the
 * old block). size 0 is not passed here (the caller frees). NULL + ENOMEM on failure,
 * p untouched. */
void *sm_arena_realloc(void *p, size_t size);
size_t sm_arena_usable_size(const void *p);

/* For the unit tests: whether freed small blocks are wiped with vector stores
 * (where the CPU has them) or explicit_bzero; returns the previous setting. */
bool sm_arena_vector_wipe(bool on);

/* Checks the arena's invariants (spans tile the chunks and the page map agrees;
 * slab counts, free lists and bin membership; every freed block and free touched
 * page is zero; the calling thread's cache). Takes every lock; reads only pages
 * that were touched. Returns the number of problems, the first described in msg.
 * For the unit tests and fuzzers, and for --enable-debug builds. */
unsigned sm_arena_check(char *msg, size_t len);

/* fork (registered with pthread_atfork by sm_arena_init). */
void sm_arena_fork_prepare(void);
void sm_arena_fork_parent(void);
void sm_arena_fork_child(void);
bool sm_arena_fork_tryprepare(void);
void sm_arena_fork_child_drop(void);

struct sm_arena_stats {
	const char *backend;        /* "memfd_secret", "memfd_secret (uncached)", "mlock" */
	uint64_t allocs, frees;
	uint64_t live_bytes, peak_bytes; /* usable sizes (class or page-rounded); the peak is
	                                  * sampled when threads publish, every few dozen calls */
	uint64_t mapped_bytes;      /* chunks mapped (what memlock is charged) */
	uint64_t touched_bytes;     /* pages ever handed out, hence faulted in */
	uint64_t chunks;
	uint64_t enomem;            /* secret allocations refused for lack of memory */
	uint64_t limit;             /* the cap in force, bytes */
};
void sm_arena_get_stats(struct sm_arena_stats *st);

/* Folds the calling thread's unpublished live-byte count into the global one (and
 * the peak). The arena does it on its slow paths; statistics call it after every
 * secret allocation and free, so that live and peak are exact. */
void sm_arena_publish(void);

/* Where the arena keeps its global counters (8 bytes each), so that another process
 * can read them from /proc/PID/mem as they are now (see stats.h, struct sm_live):
 * live and peak bytes (int64), touched and mapped bytes, chunks, ENOMEM count,
 * and the limit (uint64). */
struct sm_arena_counter_addrs {
	const void *live, *peak, *touched, *mapped, *chunks, *enomem, *limit;
};
void sm_arena_counter_addrs(struct sm_arena_counter_addrs *a);

#pragma GCC visibility pop

#endif
