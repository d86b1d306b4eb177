/* SPDX-License-Identifier: MIT */
/*
 * The arena's page allocator: the page map (one entry per page of the reservation,
 * naming the span that holds it), span descriptors, and the free bins (by size and
 * by whether the run's pages were ever touched). A free run is coalesced with free
 * neighbours of the same touched state; guard pages between chunks have no span,
 * so runs never coalesce across chunks. Everything here runs with page_lock held.
 * Span descriptors and the page map are ordinary memory and never hold a secret
 * byte. Never calls malloc.
 */
#include "config.h"
#include "arena-internal.h"
#include "meta.h"

#include <string.h>

pthread_mutex_t page_lock = PTHREAD_MUTEX_INITIALIZER;
struct span **pagemap;
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
 * same touched state. Guard pages between chunks have no span, so runs never
 * coalesce across chunks. */
void span_free(struct span *s, bool touched)
{
	s->kind = SPAN_FREE;
	s->touched = touched;
	struct span *l = span_at(s->start - PAGE);
	if (l && l->kind == SPAN_FREE && l->touched == s->touched) {
		bin_remove(l);
		s = merge(l, s);
	}
	uintptr_t end = s->start + s->npages * PAGE;
	if (end - sm_arena_base < sm_arena_span) {
		struct span *r = span_at(end);
		if (r && r->kind == SPAN_FREE && r->touched == s->touched) {
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

static struct span *find_free(size_t n, size_t align)
{
	/* Touched runs first: their pages are already paid for. */
	for (int t = 1; t >= 0; t--)
		for (unsigned b = bin_of(n); b < NBINS; b++)
			for (struct span *s = bins[t][b]; s; s = s->next)
				if (fits(s, n, align))
					return s;
	return NULL;
}

/* n pages aligned to align, all zero, or NULL (page_lock held). */
struct span *pages_alloc(size_t n, size_t align)
{
	struct span *s = find_free(n, align);
	if (!s) {
		int err = grow(n, align);
		if (err) {
			warn_oom(n * PAGE, err);
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

