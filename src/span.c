/* SPDX-License-Identifier: MIT */
/*
 * The arena's page allocator: the page map (one entry per page of the reservation,
 * naming the span that holds it), span descriptors, and the free bins (by size and
 * by whether the run's pages were ever touched). A free run is coalesced with free
 * neighbours of the same touched state, across the border of chunks side by side
 * (a guard page, which has no span, ends a range of chunks). Free runs are taken
 * best fit. Everything here runs with page_lock held, but the thread caches of
 * freed blocks of up to MEDIUM_PAGES pages (the last section), which are the
 * calling thread's own.
 * Span descriptors and the page map are ordinary memory and never hold a secret
 * byte. Never calls malloc.
 */
#include "config.h"
#include "arena-internal.h"
#include "meta.h"

#include <errno.h>
#include <string.h>

pthread_mutex_t page_lock = PTHREAD_MUTEX_INITIALIZER;
struct span **pagemap;
uintptr_t pagemap_bias;
size_t pagemap_len, pagemap_rw;
struct span *bins[2][NBINS];
struct span *desc_free;
struct span gone = { .kind = SPAN_GONE };

/* ---- span descriptors ---- */

/* From meta.c: its lock is a leaf (taken here under page_lock, never the reverse),
 * and the routing module's fork handlers hold it across fork(), so a child never
 * inherits it taken. */
struct span *desc_new(void)
{
	struct span *s = desc_free;
	if (s)
		desc_free = s->next;
	else if (!(s = sm_meta_alloc(sizeof(*s))))
		return NULL;
	memset(s, 0, sizeof(*s));
	return s;
}

void desc_put(struct span *s)
{
	s->kind = 0;
	s->next = desc_free;
	desc_free = s;
}

/* ---- page allocator (page_lock held) ---- */

unsigned bin_of(size_t n)
{
	if (n <= 32)
		return (unsigned)n - 1;
	unsigned b = 32 + (63 - (unsigned)__builtin_clzl(n)) - 5;
	return b < NBINS ? b : NBINS - 1;
}

void list_push(struct span **head, struct span *s)
{
	s->prev = NULL;
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
}

void list_remove(struct span **head, struct span *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

void bin_insert(struct span *s)
{
	list_push(&bins[s->touched][bin_of(s->npages)], s);
}

void bin_remove(struct span *s)
{
	list_remove(&bins[s->touched][bin_of(s->npages)], s);
}

/* Moves the first k pages of s (not on a list) into a new span; O(k). */
struct span *split_head(struct span *s, size_t k)
{
	struct span *h = desc_new();
	if (!h)
		return NULL;
	h->start = s->start;
	h->npages = k;
	h->kind = s->kind;
	h->touched = s->touched;
	s->start += k * PAGE;
	s->npages -= k;
	set_pages(h, h->start, k);
	return h;
}

/* Moves the pages of s from k on into a new span; O(npages - k). */
struct span *split_tail(struct span *s, size_t k)
{
	struct span *t = desc_new();
	if (!t)
		return NULL;
	t->start = s->start + k * PAGE;
	t->npages = s->npages - k;
	t->kind = s->kind;
	s->npages = k;
	set_pages(t, t->start, t->npages);
	return t;
}

/* Merges free span b (right after a) into one of them, repointing the smaller. */
static struct span *merge(struct span *a, struct span *b)
{
	if (a->npages >= b->npages) {
		set_pages(a, b->start, b->npages);
		a->npages += b->npages;
		desc_put(b);
		return a;
	}
	set_pages(b, a->start, a->npages);
	b->start = a->start;
	b->npages += a->npages;
	desc_put(a);
	return b;
}

/* Returns s (all zero now) to the free bins, coalescing with free neighbours of the
 * same touched state, in the chunk next door too if it lies side by side (guard
 * pages have no span, unmapped chunks the GONE one: neither coalesces). */
void span_free(struct span *s, bool touched)
{
	s->kind = SPAN_FREE;
	s->touched = touched;
	struct span *l = span_at(s->start - PAGE);
	if (l && span_kind(l) == SPAN_FREE && l->touched == s->touched) {
		bin_remove(l);
		s = merge(l, s);
	}
	uintptr_t end = s->start + s->npages * PAGE;
	if (end - sm_arena_base < sm_arena_span) {
		struct span *r = span_at(end);
		if (r && span_kind(r) == SPAN_FREE && r->touched == s->touched) {
			bin_remove(r);
			s = merge(s, r);
		}
	}
	bin_insert(s);
}

/* Takes n pages at an address aligned to align (bytes, a power of two >= PAGE) out
 * of free span s (on its bin), giving the rest back. */
static struct span *span_take(struct span *s, size_t n, size_t align)
{
	bin_remove(s);
	size_t head = ((round_up(s->start, align) - s->start) >> PAGE_SHIFT);
	if (head) {
		struct span *h = split_head(s, head);
		if (!h) {
			bin_insert(s);
			return NULL;
		}
		bin_insert(h);
	}
	SM_ASSERT(s->npages >= n);
	if (s->npages == n)
		return s;
	struct span *r = split_head(s, n);
	bin_insert(s);
	return r;
}

static bool fits(const struct span *s, size_t n, size_t align)
{
	uintptr_t a = round_up(s->start, align);
	return a + n * PAGE <= s->start + s->npages * PAGE;
}

/* Best fit: the smallest free run that fits, touched runs first (their pages are
 * already paid for), the lowest address among equals. Bins up to 32 pages hold
 * one size, so the first fit there is a best one; above, a bin holds sizes up to
 * twice its least, and the first fit left large holes: bench/limit_bench, a mixed
 * workload to its limit after rounds of random frees, 86.7% of 8 MiB usable with
 * first fit, 90% with best fit (with chunks side by side). */
static struct span *find_free(size_t n, size_t align)
{
	for (unsigned b = bin_of(n); b < NBINS; b++) {
		struct span *best = NULL;
		for (int t = 1; t >= 0; t--)
			for (struct span *s = bins[t][b]; s; s = s->next)
				if (fits(s, n, align) && (!best || s->npages < best->npages ||
							  (s->npages == best->npages && s->start < best->start)))
					best = s;
		if (best)
			return best;
	}
	return NULL;
}

/* n pages aligned to align, all zero, or NULL (page_lock held). quiet: the first of
 * two tries (the caller gives its memory back and tries again), or one that has a
 * smaller fallback: no compaction, no warning. */
struct span *pages_alloc_try(size_t n, size_t align, bool quiet)
{
	struct span *s = find_free(n, align);
	if (!s) {
		int err = grow(n, align);
		/* Out of budget: the free runs may hold n pages together. Not on the
		 * first of two tries (quiet), whose caller gives memory back first. */
		if ((err == -ENOMEM || err == -EAGAIN) && !quiet)
			err = compact(n, align);
		if (err) {
			if (!quiet) /* the caller warns if reclaim cannot help */
				oom_note(n * PAGE, err);
			return NULL;
		}
		s = find_free(n, align);
		if (!s)
			return NULL;
	}
	bool was_touched = s->touched;
	s = span_take(s, n, align);
	if (s && !was_touched)
		STORE(g_touched, g_touched + n * PAGE);
	return s;
}


/* ---- thread caches of freed large blocks ---- */

/* A block of 8-64 KiB is freed and allocated like a small one: into and out of the
 * calling thread's cache, by page count, with no lock (before, each took the page
 * lock and a first-fit scan: 2 threads did not scale). A cached span keeps its
 * descriptor, its pages and its page-map entries, and is zero (wiped when freed);
 * its kind says it is free, so free and realloc still name a second free. A bin
 * over its bound gives half back to the free bins. */

static unsigned span_cap(size_t n)
{
	size_t cap = SPAN_CACHE_BYTES / (n * PAGE);
	return cap < 2 ? 2 : (unsigned)cap;
}

/* A cached span of n pages (kind still SPAN_CACHED), or NULL. */
struct span *span_cache_get(size_t n)
{
	struct sbin *b = &tc.spans[n];
	struct span *s = b->head;
	if (s) {
		b->head = s->next;
		b->count--;
		s->next = NULL;
	}
	return s;
}

/* Gives the first k spans of bin n back to the free bins. */
static void span_cache_drain(size_t n, unsigned k)
{
	struct sbin *b = &tc.spans[n];
	lock(&page_lock);
	while (k-- && b->head) {
		struct span *s = b->head;
		b->head = s->next;
		b->count--;
		span_free(s, true);
	}
	unlock(&page_lock);
}

/* Keeps freed large block s (wiped) in this thread's cache; false if it is not
 * for the cache (too big, the thread is exiting, or memory is short: more than
 * 3/4 of the limit mapped). Cached blocks sit apart from the free runs around
 * them and come back at the same size, so under a limit they cost room: the
 * usable fraction of bench/limit_bench, median, was 78.4 / 85.1 / 92.0% at 2 / 8
 * / 64 MiB with the cache always on, 79.0 / 90.2 / 93.1% without it. */
bool span_cache_put(struct span *s)
{
	size_t n = s->npages;
	if (n > MEDIUM_PAGES || tc.dead || !tc.registered ||
	    LOAD(g_mapped) > LOAD(limit) / 4 * 3)
		return false;
	struct sbin *b = &tc.spans[n];
	set_kind(s, SPAN_CACHED);
	s->prev = NULL;
	s->next = b->head;
	b->head = s;
	if (unlikely(++b->count > span_cap(n)))
		span_cache_drain(n, b->count - span_cap(n) / 2);
	return true;
}

/* Empties this thread's cache (thread exit, idle release, short of memory);
 * whether it held anything. */
bool span_cache_flush(void)
{
	bool any = false;
	for (size_t n = 1; n <= MEDIUM_PAGES; n++)
		if (tc.spans[n].count) {
			span_cache_drain(n, tc.spans[n].count);
			any = true;
		}
	return any;
}
