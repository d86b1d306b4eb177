/* SPDX-License-Identifier: MIT */
/*
 * Small secret blocks (up to 8 KiB): size classes, slabs of one class carved from
 * page spans, per-class central lists, and per-thread caches in front of those.
 * The thread cache needs no lock and no atomic read-modify-write; the central
 * lists have one lock per class, taken before page_lock, never after. A free
 * block holds its mangled next link and the free-block key (see arena.c).
 * Never calls malloc.
 */
#include "config.h"
#include "arena-internal.h"

#include <errno.h>
#include <string.h>

struct central central[NCLASS];

pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
struct tcache *reg_head;
pthread_key_t tc_key;
__thread struct tcache tc TLS_IE;

__attribute__((noreturn, cold, noinline)) void corrupt(const void *at)
{
	sm_abort("malloc(): corrupted free list of secret blocks (at %p)", at);
}

/* ---- size classes ---- */

void classes_init(void)
{
	/* Under a small limit, cached blocks and the slabs their refills carve are a
	 * large part of it: a thread caches about 1/512 of the limit per class, from
	 * 4 KiB to CACHE_BYTES (bench/limit_bench at 2 MiB: 72% of the limit usable
	 * with 16 KiB caches, 79% with 4 KiB; from 8 MiB up, the default memlock
	 * limit, caches are as before). */
	size_t cache = limit / 512;
	cache = cache < 4096 ? 4096 : cache > CACHE_BYTES ? CACHE_BYTES : cache;
	unsigned c = 0;
	for (uint32_t s = 16; s <= 128; s += 16)
		class_size[c++] = s;
	for (uint32_t base = 128; base < SMALL_MAX; base *= 2)
		for (uint32_t k = 1; k <= 4; k++)
			class_size[c++] = base + k * base / 4;

	unsigned idx = 0;
	for (c = 0; c < NCLASS; c++) {
		uint32_t sz = class_size[c];
		class_magic[c] = (uint32_t)((((uint64_t)1 << 32) + sz - 1) / sz);
		/* The smallest slab that holds 8 slots (4 above 2 KiB) and wastes at most
		 * 1/16 of itself; failing that, the least wasteful one. */
		unsigned min_slots = sz > 2048 ? 4 : 8, best = 0;
		size_t best_waste = SIZE_MAX;
		for (unsigned np = 1; np <= SLAB_PAGES_MAX; np++) {
			size_t bytes = np * PAGE, slots = bytes / sz, waste = bytes - slots * sz;
			if (slots < min_slots)
				continue;
			if (waste * 16 <= bytes) {
				best = np;
				break;
			}
			if (waste * 4096 / bytes < best_waste) {
				best_waste = waste * 4096 / bytes;
				best = np;
			}
		}
		class_pages[c] = (uint16_t)best;
		class_slots[c] = (uint16_t)(best * PAGE / sz);
		uint32_t cap = (uint32_t)(cache / sz);
		class_cap[c] = (uint16_t)(cap < 4 ? 4 : cap > 128 ? 128 : cap);
		for (; idx <= sz / 16; idx++)
			class_of[idx] = (uint8_t)c;
	}
}

/* ---- thread caches ---- */


void tc_register(void)
{
	if (tc.dead)
		return;
	lock(&reg_lock);
	tc.prev = NULL;
	STORE(tc.next, reg_head);
	if (reg_head)
		reg_head->prev = &tc;
	__atomic_store_n(&reg_head, &tc, __ATOMIC_RELEASE); /* release_idle reads it unlocked */
	tc.registered = true;
	unlock(&reg_lock);
	/* A non-NULL value makes the destructor run at thread exit. */
	pthread_setspecific(tc_key, &tc);
}

static inline void tc_push(struct tbin *b, struct blk *x)
{
	x->next = mangle(x, b->head);
	x->key = blk_key;
	b->head = (uintptr_t)x;
	b->count++;
}

/* Moves up to want blocks of class c into this thread's cache: freed slots first,
 * then fresh ones carved from the current slab, then a new slab. first: the first
 * of two tries (pages_alloc_try's quiet: no compaction, no warning). */
static unsigned central_take(unsigned c, unsigned want, bool first)
{
	struct central *ce = &central[c];
	struct tbin *b = &tc.bin[c];
	const uint32_t sz = class_size[c];
	unsigned got = 0;

	lock(&ce->lock);
	while (got < want) {
		struct span *s = ce->partial;
		if (s) {
			while (got < want && s->free) {
				struct blk *x = (struct blk *)s->free;
				s->free = link_next(x);
				tc_push(b, x);
				s->used++;
				got++;
			}
			if (!s->free) {
				list_remove(&ce->partial, s);
				s->on_list = 0;
			}
			continue;
		}
		s = ce->cur;
		if (s && s->bump < class_slots[c]) {
			while (got < want && s->bump < class_slots[c]) {
				tc_push(b, (struct blk *)(s->start + (uintptr_t)s->bump * sz));
				s->bump++;
				s->used++;
				got++;
			}
			STORE(s->bump_end, s->start + (uintptr_t)s->bump * sz);
			continue;
		}
		if (ce->spare) {
			s = ce->spare;
			ce->spare = NULL;
		} else {
			lock(&page_lock);
			s = pages_alloc_try(class_pages[c], PAGE, first);
			if (s) {
				s->kind = SPAN_SLAB;
				s->cls = (uint8_t)c;
				s->used = s->bump = 0;
				s->free = 0;
				s->on_list = 0;
				STORE(s->bump_end, s->start);
			}
			unlock(&page_lock);
			if (!s)
				break;
		}
		ce->cur = s;
	}
	unlock(&ce->lock);
	return got;
}

/* An empty slab (class lock held): kept as the spare, or its pages go back. Its
 * slots are zero but for the two link words of each: clear them (the pages beyond
 * bump_end were never touched and stay so). */
void slab_release(struct central *ce, struct span *s)
{
	if (s->on_list) {
		list_remove(&ce->partial, s);
		s->on_list = 0;
	}
	memset((void *)s->start, 0, s->bump_end - s->start);
	s->bump = 0;
	s->free = 0;
	STORE(s->bump_end, s->start);
	if (!ce->spare) {
		ce->spare = s;
		return;
	}
	lock(&page_lock);
	span_free(s, true);
	unlock(&page_lock);
}

/* Puts the free slot x back on its slab (class lock held). */
void slot_return(struct central *ce, struct blk *x)
{
	struct span *s = span_at((uintptr_t)x);
	x->next = mangle(x, s->free);
	s->free = (uintptr_t)x;
	if (!s->on_list) {
		list_push(&ce->partial, s);
		s->on_list = 1;
	}
	SM_ASSERT(s->kind == SPAN_SLAB && s->used > 0);
	if (--s->used == 0 && s != ce->cur)
		slab_release(ce, s);
}

/* Returns the n blocks at the head of this thread's bin c to their slabs. */
void central_put(unsigned c, unsigned n)
{
	struct central *ce = &central[c];
	struct tbin *b = &tc.bin[c];

	lock(&ce->lock);
	while (n-- && b->head) {
		struct blk *x = (struct blk *)b->head;
		b->head = link_next(x);
		b->count--;
		slot_return(ce, x);
	}
	unlock(&ce->lock);
}

void tc_exit(void *arg)
{
	(void)arg;
	for (unsigned c = 0; c < NCLASS; c++)
		central_put(c, tc.bin[c].count);
	span_cache_flush();
	publish_live();
	lock(&reg_lock);
	STORE(g_retired_allocs, g_retired_allocs + tc.nalloc);
	STORE(g_retired_frees, g_retired_frees + tc.nfree);
	if (tc.prev)
		STORE(tc.prev->next, tc.next);
	else
		__atomic_store_n(&reg_head, tc.next, __ATOMIC_RELEASE);
	if (tc.next)
		tc.next->prev = tc.prev;
	STORE(tc.nalloc, 0);
	STORE(tc.nfree, 0);
	tc.registered = false;
	tc.dead = true;
	unlock(&reg_lock);
	release_at_exit();
}

/* What a dead thread cache would have counted goes to the retired totals. */
void count_dead(uint64_t allocs, uint64_t frees)
{
	lock(&reg_lock);
	STORE(g_retired_allocs, g_retired_allocs + allocs);
	STORE(g_retired_frees, g_retired_frees + frees);
	unlock(&reg_lock);
}

/* ---- small blocks ---- */

#ifdef SM_DEBUG
/* --enable-debug: every 64th refill, with no lock held, checks the whole arena. */
static void debug_check(void)
{
	static unsigned n;
	char msg[256];
	if (__atomic_add_fetch(&n, 1, __ATOMIC_RELAXED) % 64 == 0 && sm_arena_check(msg, sizeof(msg)))
		sm_abort("internal error: the secret arena is inconsistent: %s", msg);
}
#else
static inline void debug_check(void) {}
#endif

__attribute__((noinline)) void *small_alloc_slow(unsigned c)
{
	if (!ready) {
		count_oom();
		return NULL;
	}
	debug_check();
	if (!tc.registered)
		tc_register();
	publish_live();
	/* An exiting thread takes one block at a time: nothing stays in its cache. */
	unsigned want = tc.dead ? 1 : class_cap[c] / 2 ? class_cap[c] / 2 : 1;
	/* Short of memory: give back what this thread and the classes hold free,
	 * and try once more, free runs mapped together if need be. */
	if (!central_take(c, want, true) && (reclaim(), !central_take(c, want, false))) {
		oom_warn();
		count_oom();
		return NULL;
	}
	void *p = small_pop(c);
	if (tc.dead) {
		count_dead(1, 0);
		publish_live();
	}
	STREAMS_CHECK();
	return p;
}


/* The thread's bin c went over its bound: give half of it back. The free that
 * did it may also be an idle moment (slot_push tests that only when the bin
 * stayed within its bound): without this test, a thread whose last free took
 * its bin over (arena_test: 4161 blocks of 16 bytes) left every chunk mapped. */
__attribute__((noinline)) void cache_overflow(unsigned c)
{
	int saved = errno;
	publish_live();
	central_put(c, tc.bin[c].count - class_cap[c] / 2);
	errno = saved;
	if (tc.nfree >= tc.nalloc)
		release_idle();
}

__attribute__((noinline)) void slot_free(struct blk *x, unsigned c, uint32_t sz)
{
	explicit_bzero(x, sz);
	slot_push(x, c, sz);
}
