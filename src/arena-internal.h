/* SPDX-License-Identifier: MIT */
/*
 * The secret arena's internals, shared by its files (nothing outside them includes
 * this; the interface is arena.h):
 *   arena.c        the interface (malloc, memalign, free, realloc, usable size),
 *                  large blocks, misuse checks, initialisation, statistics
 *   slab.c         size classes, thread caches, central lists: small blocks
 *   span.c         the page map, span descriptors, free bins: the page allocator
 *   chunk.c        chunks in the reservation, the budget, the backend probe,
 *                  giving memory back (empty chunks, idle release)
 *   wipe.c         wiping freed blocks (resident pages only; AVX2 for small slots)
 *   arena_fork.c   fork: the child's copy of secret memory, or none
 *   arena_check.c  the consistency checker
 * The layout, the locks and the invariants are described at the top of arena.c.
 * The hot paths (span_at, small_pop, slot_push) are static inline here: the
 * library is not built with -flto.
 */
#ifndef SM_ARENA_INTERNAL_H
#define SM_ARENA_INTERNAL_H

#include "arena.h"
#include "compiler.h"
#include "log.h"
#include "pages.h"
#include "ro.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

#define TLS_IE __attribute__((tls_model("initial-exec")))

/* The page size: the system's (sm_pages_size), set by init before anything reads
 * it, a power of two from 4 KiB to 64 KiB (aarch64 kernels use 4, 16 or 64). The
 * page map is indexed by it; spans, slabs and chunks are counted in it. */
#define PAGE_SHIFT_MIN 12
#define PAGE_SHIFT_MAX 16
#define PAGE_SHIFT page_shift
#define PAGE ((size_t)1 << page_shift)
/* A free block's link is mangled with its own address shifted by this (glibc's
 * safe-linking: the bits above the offset within a 4 KiB page), whatever the
 * page size. */
#define LINK_SHIFT 12

#define RESERVE_MAX ((size_t)64 << 30)
#define RESERVE_LOW ((size_t)256 << 20) /* at least this much below 64 GiB */
#define RESERVE_MIN ((size_t)4 << 20)
#define RESERVE_FACTOR 8                /* times the budget */
#define CHUNK_MIN ((size_t)64 << 10)   /* below this the probe calls the limit too small */
#define CHUNK_FIRST ((size_t)256 << 10)
#define CHUNK_MAX ((size_t)8 << 20)    /* geometric growth stops here */

/* Size classes: 16..128 by 16, then four per doubling up to 8 KiB. */
#define NCLASS 32
#define SMALL_MAX 8192
#define SLAB_PAGES_MAX 16
#define CACHE_BYTES 16384           /* a thread keeps up to this much per class */

/* SPAN_GONE: the page-map entry of every page of a chunk that was unmapped (one
 * static descriptor), so that a stale pointer into it is still named a freed block. */
enum span_kind { SPAN_FREE = 1, SPAN_SLAB, SPAN_LARGE, SPAN_GONE, SPAN_CACHED };
/* SPAN_CACHED: a freed large block of up to MEDIUM_PAGES pages, wiped, kept whole in
 * the cache of the thread that freed it (struct tcache's spans), so that the next
 * block of that many pages takes no lock. */
#define MEDIUM_PAGES 16
#define SPAN_CACHE_BYTES ((size_t)64 << 10) /* a thread keeps about this much per size */

/* A free block's link words (the block is in secret memory). */
struct blk {
	uintptr_t next;             /* mangled */
	uint64_t key;
};

struct span {
	uintptr_t start;
	size_t npages;
	uint8_t kind;
	uint8_t cls;                /* SLAB */
	uint8_t touched;            /* FREE: may hold faulted-in pages (all zero);
	                             * LARGE: 0 if its pages came untouched, so that
	                             * only those the program touched are resident */
	uint8_t on_list;            /* SLAB: on its class's partial list */
	uint32_t used;              /* SLAB: slots out of the slab (cached or live) */
	uint32_t bump;              /* SLAB: slots ever carved, from the start */
	uintptr_t bump_end;         /* SLAB: start + bump * size; read by free unlocked */
	uintptr_t free;             /* SLAB: head of its freed slots (plain pointer) */
	size_t extent;              /* LARGE: bytes from start the program may have
	                             * written (sizes asked for, usable sizes reported) */
	struct span *next, *prev;   /* free bin, or partial list */
};

/* A secret file: the kernel frees its pages only once no mapping of it is left, so
 * the chunks that map parts of it (compact makes several) are unmapped together. */
struct sfile {
	size_t len;                 /* its size: counted in g_mapped until it is gone */
	uint32_t chunks;            /* chunks mapping part of it */
	uint32_t seen;              /* sm_arena_check's scratch */
	bool busy;                  /* release_empty: one of them holds something */
	bool pinned;                /* mapped outside every chunk too: never unmapped */
	struct sfile *next;         /* unused records */
};

struct chunk {
	uintptr_t start;
	size_t len;
	size_t copy_off;            /* fork copy: where its pages are in the copy's file */
	struct chunk *next;
	struct sfile *file;         /* the file it maps part of */
	bool empty;                 /* release_empty's scratch */
};

struct central {
	pthread_mutex_t lock;
	struct span *partial;       /* slabs with freed slots */
	struct span *cur;           /* the slab fresh slots are carved from */
	struct span *spare;         /* one empty slab kept back against thrashing */
} __attribute__((aligned(64)));

struct tbin {
	uintptr_t head;             /* plain pointer; the links inside blocks are mangled */
	uint32_t count;
};

struct sbin {
	struct span *head;          /* linked by next (descriptors: ordinary memory) */
	uint32_t count;
};

struct tcache {
	struct tbin bin[NCLASS];
	struct sbin spans[MEDIUM_PAGES + 1]; /* by page count */
	uint64_t nalloc, nfree;     /* written by the owner, read by stats: relaxed atomics */
	int64_t delta;              /* live bytes not yet published to g_live */
	bool registered;
	/* The thread is exiting and tc_exit ran: glibc may still free (or allocate)
	 * in __libc_thread_freeres, after every destructor; this cache is then
	 * bypassed and never registered again (its memory dies with the thread). */
	bool dead;
	/* chunk.c: idle moments still to pass without reading the clock (its
	 * unread gap); here so that slot_push counts one down without a call. */
	uint32_t unread;
	struct tcache *next, *prev;
};

#define NBINS 64

#if defined(__x86_64__) && defined(__GNUC__)
#define WIPE_AVX2 1
#endif

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define ADD(x, v) __atomic_add_fetch(&(x), (v), __ATOMIC_RELAXED)

/* ---- state ---- */

/* arena.c */
extern bool ready;                     /* set (release) when init has finished */
/* Statistics (arena.c): written on slow paths only. */
extern uint64_t g_mapped, g_touched, g_chunks, g_enomem;
extern int64_t g_live, g_peak;
extern uint64_t g_retired_allocs, g_retired_frees;

/* The arena's constants: set by init() and read-only after it (ro.h's pattern, in
 * a section of their own, sealed at the end of the arena's init, which may run
 * after the shim's seal). A stray or hostile write to the keys that check freed
 * blocks and mangle free-list links, or to the class tables, faults. */
struct arena_consts {
	uint64_t blk_key, link_cookie;
	unsigned page_shift;
	uint32_t class_size[NCLASS];
	uint32_t class_magic[NCLASS];  /* ceil(2^32 / size): exact division for slab offsets */
	uint16_t class_pages[NCLASS], class_slots[NCLASS], class_cap[NCLASS];
	uint8_t class_of[SMALL_MAX / 16 + 1];
};
union arena_ro {
	struct arena_consts v;
	unsigned char pages_[(sizeof(struct arena_consts) + SM_RO_PAGE - 1) / SM_RO_PAGE * SM_RO_PAGE];
};
extern union arena_ro arena_ro;        /* arena.c */
#define blk_key arena_ro.v.blk_key
#define link_cookie arena_ro.v.link_cookie
#define page_shift arena_ro.v.page_shift
#define class_size arena_ro.v.class_size
#define class_magic arena_ro.v.class_magic
#define class_pages arena_ro.v.class_pages
#define class_slots arena_ro.v.class_slots
#define class_cap arena_ro.v.class_cap
#define class_of arena_ro.v.class_of
extern struct central central[NCLASS];
/* Thread caches. */
extern pthread_mutex_t reg_lock;
extern struct tcache *reg_head;
extern pthread_key_t tc_key;
extern __thread struct tcache tc TLS_IE;

/* span.c. Everything below up to chunk.c's budget is guarded by page_lock. */
extern pthread_mutex_t page_lock;
extern struct span **pagemap;          /* one entry per page of the reservation */
extern uintptr_t pagemap_bias;         /* see page_slot */
extern size_t pagemap_len, pagemap_rw; /* bytes reserved, bytes committed */
extern struct span *bins[2][NBINS];    /* [touched][bin] */
extern struct span *desc_free;
extern struct span gone;

/* chunk.c */
extern struct chunk *chunks;           /* in address order */
extern struct chunk *chunk_free;       /* descriptors of unmapped chunks, for reuse */
extern size_t next_chunk;
extern uintptr_t drop_top;             /* below: the parent's dropped chunks (fork drop) */
extern enum sm_backend backend;
extern const char *backend_name;
/* Budget. */
extern size_t limit;
extern const char *limit_src;          /* "SECRETMEM_MAX", "RLIMIT_MEMLOCK" or NULL */
extern size_t limit_shown, limit_room; /* for messages: the cap as the user set it, and
				        * what the fork copy keeps back from RLIMIT_MEMLOCK */

/* wipe.c */
#ifdef WIPE_AVX2
extern bool have_avx2;
#endif

/* ---- small helpers ---- */

static inline size_t page_index(uintptr_t a)
{
	return (a - sm_arena_base) >> PAGE_SHIFT;
}

/* The page-map entry of address a: pagemap[page_index(a)], computed from the
 * address's page number and pagemap_bias (pagemap less the base's page number),
 * which saves the free fast path the subtraction that loading the page shift
 * costs it. */
static inline struct span **page_slot(uintptr_t a)
{
	return (struct span **)(pagemap_bias + (a >> PAGE_SHIFT) * sizeof(struct span *));
}

static inline struct span *span_at(uintptr_t a)
{
	return __atomic_load_n(page_slot(a), __ATOMIC_RELAXED);
}

/* A span's kind, where a thread may be changing it without a lock: a large block
 * of up to MEDIUM_PAGES pages goes LARGE <-> CACHED in its thread's cache (never
 * through FREE, so a neighbour's merge under page_lock never takes it). */
static inline unsigned span_kind(const struct span *s)
{
	return __atomic_load_n(&s->kind, __ATOMIC_RELAXED);
}

static inline void set_kind(struct span *s, unsigned kind)
{
	__atomic_store_n(&s->kind, (uint8_t)kind, __ATOMIC_RELAXED);
}

static inline void set_pages(struct span *s, uintptr_t start, size_t npages)
{
	struct span **e = page_slot(start);
	for (size_t k = 0; k < npages; k++)
		__atomic_store_n(&e[k], s, __ATOMIC_RELAXED);
}

static inline uintptr_t mangle(const struct blk *at, uintptr_t p)
{
	return p ^ ((uintptr_t)at >> LINK_SHIFT) ^ link_cookie;
}

__attribute__((noreturn, cold, noinline)) void corrupt(const void *at);

/* The next link of a free block, checked: 0 or a 16-aligned address in the arena. */
static inline uintptr_t link_next(const struct blk *b)
{
	uintptr_t n = mangle(b, b->next);
	if (unlikely(n && ((n & 15) || !sm_arena_owns((void *)n))))
		corrupt(b);
	return n;
}

static inline size_t round_up(size_t n, size_t a)
{
	return (n + a - 1) & ~(a - 1);
}

static inline void lock(pthread_mutex_t *m)
{
	pthread_mutex_lock(m);
}

static inline void unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
}


/* ---- functions shared between the arena's files ---- */

/* arena.c: statistics */
void publish_live(void);
void count_oom(void);

/* slab.c */
void classes_init(void);
void tc_register(void);
void tc_exit(void *arg);
void count_dead(uint64_t allocs, uint64_t frees);
void slab_release(struct central *ce, struct span *s);
void slot_return(struct central *ce, struct blk *x);
void central_put(unsigned c, unsigned n);
__attribute__((noinline)) void *small_alloc_slow(unsigned c);
__attribute__((noinline)) void cache_overflow(unsigned c);
__attribute__((noinline)) void slot_free(struct blk *x, unsigned c, uint32_t sz);

/* span.c (page_lock held) */
struct span *desc_new(void);
void desc_put(struct span *s);
unsigned bin_of(size_t n);
void list_push(struct span **head, struct span *s);
void list_remove(struct span **head, struct span *s);
void bin_insert(struct span *s);
void bin_remove(struct span *s);
struct span *split_head(struct span *s, size_t k);
struct span *split_tail(struct span *s, size_t k);
void span_free(struct span *s, bool touched);
struct span *pages_alloc_try(size_t n, size_t align, bool quiet);
/* span.c, thread caches of freed large blocks (no lock held) */
struct span *span_cache_get(size_t n);
bool span_cache_put(struct span *s);
bool span_cache_flush(void);

/* chunk.c */
const char *errname(int err);
void probe_backend(void);
void budget_init(void);
size_t reserve_want(void);
int grow(size_t n, size_t align);          /* page_lock held */
int compact(size_t n, size_t align);       /* page_lock held */
unsigned release_empty(void);              /* page_lock held */
struct sfile *file_new(uint32_t n, size_t len); /* page_lock held */
extern struct sfile *copy_spare;           /* arena_fork.c; page_lock */
void files_fork_child(struct sfile *copy, uint32_t n);
void alias_fork_child(void);
void file_drop(struct sfile *f);           /* page_lock held */
void oom_note(size_t want, int err);       /* page_lock held */
void oom_warn(void);
bool reclaim(void);
__attribute__((noinline)) void release_idle(void);
void release_at_exit(void);
void release_fork_child(void);

/* wipe.c */
void wipe_init(void);
bool wipe_resident(void *p, size_t len);
bool wipe_block(void *p, size_t len, bool all_touched);
#ifdef WIPE_AVX2
__attribute__((target("avx2"), noinline)) void slot_free_avx2(struct blk *x, unsigned c,
							       uint32_t sz);
#endif

/* ---- the fast paths ---- */

static inline void *small_pop(unsigned c)
{
	struct tbin *b = &tc.bin[c];
	struct blk *x = (struct blk *)b->head;
	if (unlikely(!x))
		return NULL;
	b->head = link_next(x);
	b->count--;
	x->next = 0;
	x->key = 0;
	STORE(tc.nalloc, tc.nalloc + 1);
	STORE(tc.delta, tc.delta + class_size[c]);
	return x;
}

static inline void *small_alloc(unsigned c)
{
	void *p = small_pop(c);
	return likely(p) ? p : small_alloc_slow(c);
}

/* Pushes freed slot x of class c (sz bytes, wiped but for its first 16) onto this
 * thread's bin, over its link words. */
static inline __attribute__((always_inline)) void slot_push(struct blk *x, unsigned c, uint32_t sz)
{
	struct tbin *b = &tc.bin[c];
	x->next = mangle(x, b->head);
	x->key = blk_key;
	b->head = (uintptr_t)x;
	uint64_t nfree = tc.nfree + 1;
	STORE(tc.nfree, nfree);
	STORE(tc.delta, tc.delta - sz);
	if (unlikely(++b->count > class_cap[c]))
		cache_overflow(c);
	else if (unlikely(nfree >= tc.nalloc)) {
		/* Nothing live: release_idle, unless a moment passes unread (a
		 * thread that frees each block at once is here at every free). */
		if (likely(tc.unread))
			tc.unread--;
		else
			release_idle();
	}
}

/* The standard streams' secret buffers (streams.c, through the hooks of arena.h):
 * wanted at the first secret allocation and the first after an idle release,
 * checked on the allocation slow paths and the medium-block fast path; given back
 * at an idle release, before the chunks are unmapped (chunk.c). */
extern bool streams_want;
void streams_hold(void);
void streams_give_back(void);
#define STREAMS_CHECK() \
	do { \
		if (unlikely(LOAD(streams_want)) && !tc.dead) \
			streams_hold(); \
	} while (0)

#pragma GCC visibility pop

#endif
