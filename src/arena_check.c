/* SPDX-License-Identifier: MIT */
/*
 * The arena's consistency checker (sm_arena_check): chunks against the page map
 * and the spans, slab counts and free lists, bin membership, and that every freed
 * block and free touched page is zero (calloc relies on it). For the unit tests,
 * the fuzzers and --enable-debug builds. Takes every arena lock; reads only pages
 * that were touched. Never calls malloc.
 */
#include "config.h"
#include "arena-internal.h"

#include <string.h>

struct check {
	char *msg;
	size_t len;
	unsigned problems;
};

#define PROBLEM(c, ...)                                                      \
	do {                                                                 \
		if (!(c)->problems++ && (c)->msg)                             \
			sm_format((c)->msg, (c)->len, __VA_ARGS__);           \
	} while (0)

static bool on_list(const struct span *head, const struct span *s)
{
	for (const struct span *p = head, *prev = NULL; p; prev = p, p = p->next) {
		if (p->prev != prev)
			return false; /* a broken back link: reported as not found */
		if (p == s)
			return true;
	}
	return false;
}

static bool all_zero(uintptr_t from, uintptr_t to)
{
	for (const unsigned char *p = (const void *)from; p < (const unsigned char *)to; p++)
		if (*p)
			return false;
	return true;
}

/* A slab: counts agree, its freed slots are on its list, zero but for their link
 * words, and the partial-list flag says whether it has any. */
static void check_slab(struct check *c, const struct span *s)
{
	unsigned cls = s->cls;
	uint32_t sz = class_size[cls];
	if (cls >= NCLASS || s->npages != class_pages[cls]) {
		PROBLEM(c, "slab at %p: class %u with %zu pages", (void *)s->start, cls, s->npages);
		return;
	}
	if (s->bump > class_slots[cls] || s->used > s->bump ||
	    s->bump_end != s->start + (uintptr_t)s->bump * sz)
		PROBLEM(c, "slab at %p: bump %u, used %u, bump_end %p of %u slots", (void *)s->start,
			s->bump, s->used, (void *)s->bump_end, class_slots[cls]);
	uint32_t nfree = 0;
	for (uintptr_t x = s->free; x && nfree <= s->bump; nfree++) {
		if (x < s->start || x >= s->bump_end || (x - s->start) % sz) {
			PROBLEM(c, "slab at %p: freed slot %p outside its slots", (void *)s->start, (void *)x);
			return;
		}
		if (!all_zero(x + sizeof(struct blk), x + sz))
			PROBLEM(c, "freed secret block %p (%u bytes) is not zero", (void *)x, sz);
		x = mangle((const struct blk *)x, ((const struct blk *)x)->next);
	}
	if (s->used + nfree != s->bump)
		PROBLEM(c, "slab at %p: %u slots out and %u freed, but %u carved", (void *)s->start,
			s->used, nfree, s->bump);
	if ((nfree != 0) != (s->on_list != 0))
		PROBLEM(c, "slab at %p: %u freed slots but %s the partial list", (void *)s->start,
			nfree, s->on_list ? "on" : "not on");
	if (s->on_list && !on_list(central[cls].partial, s))
		PROBLEM(c, "slab at %p: flagged on the partial list of class %u but not on it",
			(void *)s->start, cls);
}

/* A free span: on the bin its size and touched state name, not next to another
 * free span of the same state (those merge), and zero where it was touched. */
static void check_free(struct check *c, const struct span *s, const struct span *left)
{
	if (!on_list(bins[s->touched][bin_of(s->npages)], s))
		PROBLEM(c, "free span at %p (%zu pages) is not on its bin", (void *)s->start, s->npages);
	if (left && left->kind == SPAN_FREE && left->touched == s->touched)
		PROBLEM(c, "free spans at %p and %p were not merged", (void *)left->start,
			(void *)s->start);
	/* Untouched pages are zero by the kernel's word and reading them would fault
	 * them in; touched ones were wiped by the arena. */
	if (s->touched && !all_zero(s->start, s->start + s->npages * PAGE))
		PROBLEM(c, "free page run at %p (%zu pages) is not zero", (void *)s->start, s->npages);
}

/* The calling thread's cache: every cached block is a carved slot of a slab of its
 * class, carries the free-block key, is zero but for its link words, and the
 * counts agree. */
static void check_own_cache(struct check *c)
{
	for (unsigned cls = 0; cls < NCLASS; cls++) {
		const struct tbin *b = &tc.bin[cls];
		uint32_t n = 0;
		for (uintptr_t x = b->head; x && n <= b->count; n++) {
			const struct span *s = sm_arena_owns((void *)x) ? span_at(x) : NULL;
			if (!s || s->kind != SPAN_SLAB || s->cls != cls || x >= s->bump_end ||
			    (x - s->start) % class_size[cls]) {
				PROBLEM(c, "thread cache of class %u holds %p, not a slot of that class",
					cls, (void *)x);
				break;
			}
			if (((const struct blk *)x)->key != blk_key)
				PROBLEM(c, "cached block %p lacks the free-block key", (void *)x);
			if (!all_zero(x + sizeof(struct blk), x + class_size[cls]))
				PROBLEM(c, "freed secret block %p (%u bytes) is not zero", (void *)x,
					class_size[cls]);
			x = mangle((const struct blk *)x, ((const struct blk *)x)->next);
		}
		if (n != b->count)
			PROBLEM(c, "thread cache of class %u: %u blocks listed, count %u", cls, n, b->count);
	}
}

/* A freed block in a thread's cache: of a size that is cached. Whether it is zero
 * only its own thread can look (check_own_spans): another may take it from its
 * cache and write to it while this reads, with no lock. */
static void check_cached(struct check *c, const struct span *s)
{
	if (s->npages > MEDIUM_PAGES)
		PROBLEM(c, "cached block at %p has %zu pages", (void *)s->start, s->npages);
}

/* The calling thread's cache of freed large blocks: each bin holds cached spans of
 * its page count, as many as it says, and each is zero. */
static void check_own_spans(struct check *c)
{
	for (size_t n = 1; n <= MEDIUM_PAGES; n++) {
		uint32_t k = 0;
		for (const struct span *s = tc.spans[n].head; s && k <= tc.spans[n].count;
		     s = s->next, k++)
			if (s->kind != SPAN_CACHED || s->npages != n) {
				PROBLEM(c, "span cache of %zu pages holds %p (kind %u, %zu pages)", n,
					(void *)s->start, s->kind, s->npages);
				break;
			} else if (!all_zero(s->start, s->start + n * PAGE)) {
				PROBLEM(c, "cached freed secret block at %p (%zu pages) is not zero",
					(void *)s->start, n);
			}
		if (k != tc.spans[n].count)
			PROBLEM(c, "span cache of %zu pages: %u listed, count %u", n, k,
				tc.spans[n].count);
	}
}

unsigned sm_arena_check(char *msg, size_t len)
{
	struct check c = { msg, len, 0 };
	if (msg && len)
		msg[0] = '\0';
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
		return 0;
	lock(&reg_lock);
	for (unsigned k = 0; k < NCLASS; k++)
		lock(&central[k].lock);
	lock(&page_lock);

	/* Chunks lie in address order inside the owned range, side by side or apart
	 * with an unmapped guard page (never mapped, or a chunk unmapped since)
	 * between, and add up to what is counted as mapped. */
	uint64_t mapped = 0, nchunks = 0;
	for (const struct chunk *ch = chunks, *prev = NULL; ch; prev = ch, ch = ch->next) {
		uintptr_t end = ch->start + ch->len;
		const struct span *g;
		mapped += ch->len;
		nchunks++;
		if (ch->start < sm_arena_base + PAGE || end + PAGE - sm_arena_base > sm_arena_span ||
		    (ch->next && end != ch->next->start && end + PAGE > ch->next->start) || !ch->len ||
		    (ch->len & (PAGE - 1)))
			PROBLEM(&c, "chunk at %p (%zu bytes) overlaps its neighbour or leaves the range",
				(void *)ch->start, ch->len);
		else if ((!prev || prev->start + prev->len != ch->start) &&
			 (g = span_at(ch->start - PAGE)) && g != &gone)
			PROBLEM(&c, "chunk at %p: a guard page has a span", (void *)ch->start);
		else if ((!ch->next || ch->next->start != end) && (g = span_at(end)) && g != &gone)
			PROBLEM(&c, "chunk at %p: a guard page has a span", (void *)ch->start);
	}
	/* Each file's record counts the chunks that map part of it, and the mapped
	 * total is the size of the files (at least what the chunks map). */
	uint64_t files = 0;
	for (const struct chunk *ch = chunks; ch; ch = ch->next)
		if (ch->file->seen++ == 0)
			files += ch->file->len;
	for (const struct chunk *ch = chunks; ch; ch = ch->next) {
		if (ch->file->seen && ch->file->seen != ch->file->chunks)
			PROBLEM(&c, "chunk at %p: its file's record counts %u chunks, %u map it",
				(void *)ch->start, ch->file->chunks, ch->file->seen);
		ch->file->seen = 0;
	}
	if (files != g_mapped || mapped > g_mapped || nchunks != g_chunks || g_mapped > limit)
		PROBLEM(&c, "chunks: %llu bytes in %llu of files of %llu, counted %llu in %llu (limit %zu)",
			(unsigned long long)mapped, (unsigned long long)nchunks,
			(unsigned long long)files, (unsigned long long)g_mapped,
			(unsigned long long)g_chunks, limit);
	/* Spans tile every range of chunks side by side exactly, and the page map
	 * agrees with them. */
	for (const struct chunk *ch = chunks, *last; ch; ch = last->next) {
		const struct span *left = NULL;
		for (last = ch; last->next && last->next->start == last->start + last->len;)
			last = last->next;
		uintptr_t end = last->start + last->len;
		for (uintptr_t a = ch->start; a < end;) {
			const struct span *s = span_at(a);
			if (!s || s->start != a || !s->npages || s->start + s->npages * PAGE > end) {
				PROBLEM(&c, "page %p of the chunk at %p: no span starts there", (void *)a,
					(void *)ch->start);
				break;
			}
			for (size_t i = 1; i < s->npages; i++)
				if (span_at(a + i * PAGE) != s)
					PROBLEM(&c, "page %p: the page map names another span than %p",
						(void *)(a + i * PAGE), (void *)s->start);
			unsigned kind = span_kind(s);
			if (kind == SPAN_SLAB)
				check_slab(&c, s);
			else if (kind == SPAN_FREE)
				check_free(&c, s, left);
			else if (kind == SPAN_CACHED)
				check_cached(&c, s);
			else if (kind != SPAN_LARGE)
				PROBLEM(&c, "span at %p has kind %u", (void *)s->start, kind);
			else if (LOAD(s->extent) > s->npages * PAGE)
				PROBLEM(&c, "large block at %p: extent %zu beyond its %zu pages",
					(void *)s->start, LOAD(s->extent), s->npages);
			left = s;
			a += s->npages * PAGE;
		}
	}
	/* Every span on a bin is free and on the right bin. */
	for (int t = 0; t < 2; t++)
		for (unsigned b = 0; b < NBINS; b++)
			for (const struct span *s = bins[t][b]; s; s = s->next)
				if (s->kind != SPAN_FREE || s->touched != t || bin_of(s->npages) != b)
					PROBLEM(&c, "bin %d/%u holds span %p (kind %u, %zu pages)", t, b,
						(void *)s->start, s->kind, s->npages);
	check_own_cache(&c);
	check_own_spans(&c);

	unlock(&page_lock);
	for (unsigned k = NCLASS; k-- > 0;)
		unlock(&central[k].lock);
	unlock(&reg_lock);
	return c.problems;
}
