/* SPDX-License-Identifier: MIT */
/*
 * The secret arena: a page allocator over secret chunks, small size classes in
 * slabs on top of it, and per-thread caches in front of those.
 *
 * Layout. One PROT_NONE range is reserved at start-up (a few times the budget,
 * within RLIMIT_AS); chunks (one memfd_secret file each, 256 KiB doubling to
 * 8 MiB, at most half of the budget left, or bigger for a big request) are
 * mapped into its lowest free gap, right after the chunk before it (chunks side by
 * side form one range whose free runs merge, so a block may span chunks), with an
 * unmapped guard page at either end of each such range. A chunk that holds
 * nothing is unmapped (its memory and memlock charge go back to the kernel) when
 * an allocation finds the budget or the range short (after the thread's cache and
 * the empty slabs kept back were given back), and every chunk is when no secret
 * block is live (at most once per hold, 50 ms to 1 s: chunk.c). Every page of the range has an entry in the page map
 * (ordinary memory, committed, and readable, only up to the highest chunk so far)
 * pointing to the span that holds it: a FREE run, a SLAB of one size class, a
 * LARGE block, or GONE (an unmapped chunk). Span descriptors, the page map and all
 * other metadata live in ordinary memory and never hold a secret byte.
 *
 * Layers and their locks (taken in this order, never the reverse):
 *   thread cache (TLS, no lock) -> per-class central lists -> pages (one lock).
 * The fast path of malloc and free touches only the calling thread's cache and
 * read-only metadata: no lock, no atomic read-modify-write.
 *
 * Invariants:
 *  - every free page is zero (untouched, or wiped before it was freed), so a block
 *    is zero when handed out: a small one's two link words are cleared then;
 *  - a block is wiped when freed and when realloc moves it: a small one over its
 *    usable size, a large one over its extent (what it was asked to hold, or
 *    all of it once malloc_usable_size said so; the rest was never handed out);
 *  - a free small block holds, in its first word, the next link mangled with its
 *    own address and a random cookie (glibc's safe-linking) and, in its second,
 *    the per-process random key: a free() that finds the key is a double free;
 *  - freed pages are reused before untouched ones are carved (a first touch of a
 *    secret page costs ~25 us and is never given back short of unmapping);
 *  - mapped bytes never exceed the limit (SECRETMEM_MAX, RLIMIT_MEMLOCK), read
 *    again before each chunk is mapped (a privilege drop changes it).
 * Never calls malloc, free or stdio; never reads an untouched page; never falls
 * back to ordinary memory when secret memory runs out.
 *
 * The arena's files (arena-internal.h holds their shared state): this one is the
 * interface (malloc, memalign, free, realloc, usable size), large blocks, the
 * misuse checks, initialisation and the statistics; slab.c the size classes and
 * thread caches, span.c the page allocator, chunk.c the chunks and the budget,
 * wipe.c the wiping, arena_fork.c fork, arena_check.c the consistency checker.
 */
#include "config.h"
#include "arena-internal.h"
#include "sandbox.h"
#include "options.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

/* atfork.c, in the preload library only (weak: the unit tests link the arena alone). */
extern void sm_atfork_init(void) __attribute__((weak, visibility("hidden")));

uintptr_t sm_arena_base;
uintptr_t sm_arena_span;
uintptr_t sm_arena_reserved;

bool ready;
union arena_ro arena_ro __attribute__((section("sm_ro_arena"), aligned(SM_RO_PAGE)));
static size_t page_wanted;             /* sm_arena_set_page_size */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* ---- large blocks ---- */

/* A large block's pages from the page allocator, extent bytes of it handed out;
 * first: the first of two tries (pages_alloc_try's quiet).
 * Its kind is set under the lock: a free run next to it must not merge with it;
 * and its extent too: the descriptor may be a free run's that still holds the
 * extent of the block it once was, larger than these pages, and the checker
 * (sm_arena_check, every 64th refill with --enable-debug) would see that. */
static struct span *large_pages(size_t n, size_t align, bool first, size_t extent)
{
	lock(&page_lock);
	struct span *s = pages_alloc_try(n, align, first);
	if (s) {
		set_kind(s, SPAN_LARGE);
		s->extent = extent;
	}
	unlock(&page_lock);
	return s;
}

/* A large block that holds size bytes; its extent is what it was asked for.
 * quiet (realloc's headroom, which has a smaller fallback): a failure is neither
 * counted nor reported. */
static void *large_alloc_q(size_t size, size_t align, bool quiet)
{
	if (!ready || size > sm_arena_reserved) {
		if (!quiet)
			count_oom();
		return NULL;
	}
	size_t n = round_up(size ? size : 1, PAGE) >> PAGE_SHIFT;
	struct span *s = NULL;
	if (n <= MEDIUM_PAGES && align == PAGE && (s = span_cache_get(n))) {
		/* The fast path: no lock, no shared cache line. */
		set_kind(s, SPAN_LARGE);
		STORE(s->extent, size); /* the checker reads it under page_lock */
		STORE(tc.nalloc, tc.nalloc + 1);
		STORE(tc.delta, tc.delta + (int64_t)(n * PAGE));
		STREAMS_CHECK();
		return (void *)s->start;
	}
	s = large_pages(n, align, true, size);
	/* Short of memory: give back what this thread (its cached blocks too) and the
	 * classes hold free, and try once more, free runs mapped together if need be. */
	if (!s && !quiet) {
		reclaim();
		s = large_pages(n, align, false, size);
	}
	if (!s) {
		if (!quiet) {
			oom_warn();
			count_oom();
		}
		return NULL;
	}
	if (!tc.registered)
		tc_register();
	STORE(tc.nalloc, tc.nalloc + 1);
	STORE(tc.delta, tc.delta + (int64_t)(n * PAGE));
	publish_live();
	if (tc.dead)
		count_dead(1, 0);
	STREAMS_CHECK();
	return (void *)s->start;
}

/* ---- the shim's own pages (streams.c's buffers) ----
 *
 * Whole zeroed pages, not counted among the program's allocations: they neither
 * show in the statistics nor keep the arena from going idle, where streams.c
 * gives them back first (release_idle). */

void *sm_arena_own_pages(size_t size)
{
	if (!ready || size > sm_arena_reserved)
		return NULL;
	size_t n = round_up(size ? size : 1, PAGE) >> PAGE_SHIFT;
	struct span *s = large_pages(n, PAGE, true, n * PAGE);
	return s ? (void *)s->start : NULL;
}

void sm_arena_own_free(void *p, size_t size)
{
	struct span *s = span_at((uintptr_t)p);
	size_t len = round_up(size ? size : 1, PAGE);
	/* Only the pages faulted in: a stream's buffer is often never used, and
	 * wiping it would fault it in (~25 us a page) at every idle release. */
	const size_t kp = sm_pages_size();
	unsigned char vec[64];
	if (len / kp <= sizeof(vec) && sm_pages_resident(p, len, vec) == 0) {
		for (size_t i = 0; i < len / kp; i++)
			if (vec[i] & 1)
				explicit_bzero((char *)p + i * kp, kp);
	} else {
		wipe_resident(p, len);
	}
	lock(&page_lock);
	span_free(s, true);
	unlock(&page_lock);
}

bool streams_want = true;
static void (*hook_hold)(void), (*hook_give_back)(void);

void sm_arena_streams_hooks(void (*hold)(void), void (*give_back)(void))
{
	hook_hold = hold;
	hook_give_back = give_back;
}

__attribute__((noinline)) void streams_hold(void)
{
	/* Under a seccomp filter: a stream without a buffer yet would be asked fstat
	 * and isatty, which a sandbox may kill (sshd's does); the streams keep the
	 * buffers they have. */
	if (!hook_hold || LOAD(sm_sandboxed) ||
	    !__atomic_exchange_n(&streams_want, false, __ATOMIC_RELAXED))
		return;
	hook_hold();
}

void streams_give_back(void)
{
	if (hook_give_back)
		hook_give_back();
}

static void *large_alloc(size_t size, size_t align)
{
	return large_alloc_q(size, align, false);
}

static void large_free(struct span *s)
{
	size_t len = s->npages * PAGE;
	/* A block whose pages came untouched is wiped where resident (mincore);
	 * once all its pages are, it is one like any other (no system call at
	 * each free while it goes round a thread cache). */
	if (wipe_block((void *)s->start, s->extent, s->touched) &&
	    s->extent > (s->npages - 1) * PAGE)
		s->touched = 1;
	if (!tc.registered)
		tc_register();
	if (span_cache_put(s)) {
		uint64_t nfree = tc.nfree + 1;
		STORE(tc.nfree, nfree);
		STORE(tc.delta, tc.delta - (int64_t)len);
		if (unlikely(nfree >= tc.nalloc))
			release_idle();
		return;
	}
	lock(&page_lock);
	span_free(s, true);
	unlock(&page_lock);
	STORE(tc.nfree, tc.nfree + 1);
	STORE(tc.delta, tc.delta - (int64_t)len);
	publish_live();
	if (tc.dead)
		count_dead(0, 1);
	else if (tc.nfree >= tc.nalloc)
		release_idle();
}

/* ---- misuse ---- */

/* The span of p, a live block, for fn ("free", "realloc", ...); aborts on misuse.
 * NULL: p lies in a chunk the parent had and SECRETMEM_FORK=drop took away. */
static struct span *checked_span(const void *p, const char *fn)
{
	uintptr_t a = (uintptr_t)p;
	struct span *s = span_at(a);
	if (!s) {
		if (a < drop_top)
			return NULL;
		sm_abort("%s(): invalid pointer %p (not a secret block)", fn, p);
	}
	if (s->kind == SPAN_SLAB) {
		uint32_t sz = class_size[s->cls];
		uintptr_t rel = a - s->start;
		if (rel % sz)
			sm_abort("%s(): invalid pointer %p (inside a secret block, not at its start)", fn, p);
		if (a >= LOAD(s->bump_end))
			sm_abort("%s(): invalid pointer %p (not a secret block)", fn, p);
		if (((const struct blk *)p)->key == blk_key) {
			if (fn[0] == 'f')
				sm_abort("free(): double free of secret block %p", p);
			sm_abort("%s(): invalid pointer %p (secret block already freed)", fn, p);
		}
		return s;
	}
	if (s->kind == SPAN_LARGE) {
		if (a != s->start)
			sm_abort("%s(): invalid pointer %p (inside a secret block, not at its start)", fn, p);
		return s;
	}
	/* A free run. Its start is most likely a freed large block; elsewhere in it
	 * (freed runs merge, so a freed block's start may lie inside) the pointer is
	 * an address inside freed secret memory, or a block freed twice. */
	if (a != s->start) {
		sm_abort("%s(): invalid pointer %p (inside freed secret memory: an address inside "
			 "a freed block, or a block freed twice)", fn, p);
	}
	if (fn[0] == 'f')
		sm_abort("free(): double free of secret block %p", p);
	sm_abort("%s(): invalid pointer %p (secret block already freed)", fn, p);
}

static __attribute__((noinline)) void free_slow(void *p)
{
	int saved = errno;
	struct span *s = checked_span(p, "free");
	if (!s) /* the parent's block, dropped at fork: the child has nothing to free */
		return;
	if (s->kind == SPAN_LARGE) {
		large_free(s);
	} else if (tc.dead) {
		/* An exiting thread (glibc's per-thread buffers, freed after every
		 * destructor): straight back to the slab, wiped. */
		struct blk *x = p;
		unsigned c = s->cls;
		explicit_bzero(x, class_size[c]);
		x->key = blk_key;
		struct central *ce = &central[c];
		lock(&ce->lock);
		slot_return(ce, x);
		unlock(&ce->lock);
		STORE(tc.delta, tc.delta - (int64_t)class_size[c]);
		publish_live();
		count_dead(0, 1);
	} else {
		/* A valid small block from a thread with no registered cache yet. */
		tc_register();
		sm_arena_free(p);
	}
	errno = saved;
}
/* ---- the interface ---- */

void *sm_arena_malloc(size_t size)
{
	if (likely(size <= SMALL_MAX))
		return small_alloc(class_of[(size + 15) >> 4]);
	return large_alloc(size, PAGE);
}

void *sm_arena_memalign(size_t align, size_t size)
{
	if (align <= 16)
		return sm_arena_malloc(size);
	if (size <= SMALL_MAX && align <= PAGE) {
		/* Slabs are page-aligned, so a class whose size is a multiple of align
		 * (every power of two above it does) gives aligned slots. */
		for (unsigned c = class_of[(size + 15) >> 4]; c < NCLASS; c++)
			if (class_size[c] % align == 0)
				return small_alloc(c);
	}
	if (align > sm_arena_reserved) {
		count_oom();
		return NULL;
	}
	return large_alloc(size, align < PAGE ? PAGE : align);
}

void sm_arena_free(void *p)
{
	struct span *s = span_at((uintptr_t)p);
	if (likely(s && s->kind == SPAN_SLAB)) {
		unsigned c = s->cls;
		uint32_t sz = class_size[c];
		uintptr_t rel = (uintptr_t)p - s->start;
		uint32_t q = (uint32_t)((rel * class_magic[c]) >> 32);
		struct blk *x = p;
		if (likely(rel == (uintptr_t)q * sz && (uintptr_t)p < LOAD(s->bump_end) &&
			   x->key != blk_key && tc.registered)) {
#ifdef WIPE_AVX2
			/* 32 to 256 bytes: one compare */
			if (likely(sz - 32 <= 256 - 32 && have_avx2)) {
				slot_free_avx2(x, c, sz);
				return;
			}
#endif
			slot_free(x, c, sz);
			return;
		}
	}
	free_slow(p);
}

size_t sm_arena_usable_size(const void *p)
{
	struct span *s = checked_span(p, "malloc_usable_size");
	if (!s)
		return 0;
	if (s->kind == SPAN_SLAB)
		return class_size[s->cls];
	/* The program may use all of it now: free must wipe all of it. */
	STORE(s->extent, s->npages * PAGE);
	return s->npages * PAGE;
}

/* Moves p (of which the first used bytes may have been written; the rest is
 * zero) to a new block of size bytes. */
static void *move(void *p, size_t used, size_t size)
{
	void *q = sm_arena_malloc(size);
	if (!q)
		return NULL;
	memcpy(q, p, used < size ? used : size);
	sm_arena_free(p); /* wipes it */
	return q;
}

/* Moves large block p (of which the first used bytes may have been written) to a
 * new one of room pages, or of size bytes if that fails. */
static void *move_large(void *p, size_t used, size_t size, size_t room)
{
	void *q = NULL;
	if (room * PAGE > size) {
		q = large_alloc_q(room * PAGE, PAGE, true);
		if (q)
			STORE(span_at((uintptr_t)q)->extent, size);
	}
	if (!q && !(q = sm_arena_malloc(size)))
		return NULL;
	memcpy(q, p, used < size ? used : size);
	sm_arena_free(p); /* wipes it */
	return q;
}

/* Grows large block s to n pages with the free pages right after it. */
static bool grow_in_place(struct span *s, size_t n)
{
	bool ok = false;
	size_t more = n - s->npages;
	lock(&page_lock);
	uintptr_t end = s->start + s->npages * PAGE;
	struct span *r = end - sm_arena_base < sm_arena_span ? span_at(end) : NULL;
	if (r && span_kind(r) == SPAN_FREE && r->npages >= more) {
		bool was_touched = r->touched;
		bin_remove(r);
		struct span *h = r->npages == more ? r : split_head(r, more);
		if (h) {
			if (h != r)
				bin_insert(r);
			set_pages(s, h->start, more);
			desc_put(h);
			s->npages = n;
			s->touched &= was_touched;
			if (!was_touched)
				STORE(g_touched, g_touched + more * PAGE);
			ok = true;
		} else {
			bin_insert(r);
		}
	}
	unlock(&page_lock);
	return ok;
}

/* Gives the pages of large block s from n on back, wiped. */
static void shrink_in_place(struct span *s, size_t n)
{
	size_t keep = n * PAGE;
	if (s->extent > keep) {
		wipe_block((void *)(s->start + keep), s->extent - keep, s->touched);
		STORE(s->extent, keep); /* the checker reads it under page_lock */
	}
	lock(&page_lock);
	struct span *t = split_tail(s, n);
	if (t)
		span_free(t, true);
	unlock(&page_lock);
	/* Without a descriptor the tail simply stays with the block (wiped). */
}

void *sm_arena_realloc(void *p, size_t size)
{
	struct span *s = checked_span(p, "realloc");
	if (!s)
		sm_abort("realloc(): invalid pointer %p (a secret block of the parent process, "
			 "dropped at fork by SECRETMEM_FORK=drop)", p);
	if (s->kind == SPAN_SLAB) {
		size_t usable = class_size[s->cls];
		return size <= usable ? p : move(p, usable, size);
	}
	if (size > sm_arena_reserved) {
		count_oom();
		return NULL;
	}
	size_t n = round_up(size, PAGE) >> PAGE_SHIFT, old = s->npages;
	if (n == 0)
		n = 1;
	if (n <= old && size >= s->extent) {
		/* Growing within its pages (the room a growth left): no lock. */
		STORE(s->extent, size);
		return p;
	}
	if (n < old) {
		shrink_in_place(s, n);
	} else if (n > old) {
		/* Growing: room for twice as much, so that a block grown in small
		 * steps takes the lock and moves O(log) times rather than at every
		 * page (bench/arena_cases realloc); exactly n if that fails. */
		size_t room = n < 2 * old ? 2 * old : n;
		if (!grow_in_place(s, room) && (room == n || !grow_in_place(s, n)))
			return move_large(p, s->extent, size, room);
	}
	if (size > s->extent)
		STORE(s->extent, size);
	STORE(tc.delta, tc.delta + ((int64_t)s->npages - (int64_t)old) * (int64_t)PAGE);
	publish_live();
	return p;
}

/* ---- initialisation ---- */

static void init(void)
{
	size_t ps = page_wanted ? page_wanted : sm_pages_size();
	if ((ps & (ps - 1)) || ps < (size_t)1 << PAGE_SHIFT_MIN || ps > (size_t)1 << PAGE_SHIFT_MAX ||
	    ps % sm_pages_size())
		sm_die("page size %zu is not supported (4 KiB to 64 KiB pages are)", ps);
	page_shift = (unsigned)__builtin_ctzl(ps);
	wipe_init();
	if (getrandom(&blk_key, sizeof(blk_key), 0) != sizeof(blk_key) ||
	    getrandom(&link_cookie, sizeof(link_cookie), 0) != sizeof(link_cookie))
		sm_die("getrandom failed: cannot seed the secret heap's integrity checks");
	blk_key |= 1; /* never zero: fresh blocks are zero */

	probe_backend();
	sm_arena_reserved = RESERVE_MAX;
	budget_init(); /* the budget sizes the reservation */
	classes_init(); /* the slab sizes depend on the page size, the caches on the budget */
	size_t span = reserve_want();
	void *base = sm_pages_reserve(&span, RESERVE_MIN);
	if (!base)
		sm_die("cannot reserve address space for secret memory (at least %zu bytes); "
		       "check `ulimit -v`", RESERVE_MIN);
	/* Slabs are aligned to PAGE from the base. The system's pages always are; a
	 * larger page set by sm_arena_set_page_size may need the base moved up. */
	size_t skew = round_up((uintptr_t)base, PAGE) - (uintptr_t)base;
	base = (char *)base + skew;
	span = (span - skew) & ~(PAGE - 1);
	pagemap_len = round_up((span >> PAGE_SHIFT) * sizeof(*pagemap), PAGE);
	/* Inaccessible until chunks need it (a root scan reads only what is committed),
	 * and only the committed part counts against overcommit. Every pointer that
	 * sm_arena_owns accepts has its entry committed: the owned range grows with
	 * the highest chunk. */
	pagemap = mmap(NULL, pagemap_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	/* Mostly never-touched zero pages: a core dump (gcore reads them all) would be
	 * as large as the map. */
	if (pagemap != MAP_FAILED)
		madvise(pagemap, pagemap_len, MADV_DONTDUMP);
	if (pagemap == MAP_FAILED)
		sm_die("cannot reserve the secret memory page map (%zu bytes)", pagemap_len);

	sm_arena_reserved = span;
	sm_arena_base = (uintptr_t)base;
	pagemap_bias = (uintptr_t)pagemap - (sm_arena_base >> PAGE_SHIFT) * sizeof(*pagemap);
	sm_arena_span = PAGE; /* page 0 is a guard: coalescing looks left */
	budget_init();

	for (unsigned c = 0; c < NCLASS; c++)
		pthread_mutex_init(&central[c].lock, NULL);
	if (pthread_key_create(&tc_key, tc_exit) != 0)
		sm_die("pthread_key_create failed: out of thread-specific keys");

	/* The probe: map the first chunk now, so that a zero or tiny memlock limit
	 * stops the program at start-up rather than at its first secret. */
	if (limit < CHUNK_MIN)
		sm_die("the secret memory limit is %zu bytes (%s), less than the %zu needed; raise "
		       "it with `ulimit -l` (KiB), systemd LimitMEMLOCK=, or SECRETMEM_MAX",
		       limit_shown, limit_src ? limit_src : "reservation", CHUNK_MIN + limit_room);
	lock(&page_lock);
	int err = grow(1, PAGE); /* clipped to the limit */
	/* Give it back: while a secret mapping exists the kernel refuses to hibernate
	 * the machine, and a process may never allocate a secret. */
	if (!err)
		release_empty();
	unlock(&page_lock);
	if (err == -EAGAIN)
		sm_die("cannot map secret memory: RLIMIT_MEMLOCK is exhausted (memory locked "
		       "elsewhere in the process counts too); raise it with `ulimit -l` or systemd "
		       "LimitMEMLOCK=");
	if (err)
		sm_die("cannot map secret memory (%s)%s", errname(-err),
		       err == -EPERM ? ": refused by a security module or seccomp filter" :
		       err == -ENOMEM ? ": out of memory or address space" : "");
	sm_info("secret arena: %s, limit %zu bytes (%s)", backend_name, limit,
		limit_src ? limit_src : "unlimited");

	/* The shim registers the fork handlers itself, before any other (atfork.c);
	 * a program linking the arena directly (the unit tests) gets them here. */
	if (!sm_atfork_init &&
	    pthread_atfork(sm_arena_fork_prepare, sm_arena_fork_parent, sm_arena_fork_child) != 0)
		sm_die("pthread_atfork failed: cannot protect secret memory across fork()");
	sm_ro_seal_range(&arena_ro, sizeof(arena_ro), "the arena's keys and class tables are");
	__atomic_store_n(&ready, true, __ATOMIC_RELEASE);
}

void sm_arena_set_page_size(size_t size)
{
	page_wanted = size;
}

void sm_arena_init(void)
{
	if (sm_opt.mode != SM_MODE_OFF)
		pthread_once(&init_once, init);
}

/* ---- stats ---- */

/* Written on slow paths only; read from another process by secretmem-inspect
 * (sm_arena_counter_addrs). */
uint64_t g_mapped, g_touched, g_chunks, g_enomem;
int64_t g_live, g_peak;
uint64_t g_retired_allocs, g_retired_frees;

static void peak_update(int64_t live)
{
	int64_t p = LOAD(g_peak);
	while (live > p && !__atomic_compare_exchange_n(&g_peak, &p, live, true,
							__ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

void publish_live(void)
{
	if (tc.delta) {
		int64_t live = ADD(g_live, tc.delta);
		STORE(tc.delta, 0);
		peak_update(live);
	}
}

void sm_arena_publish(void)
{
	publish_live();
}

void count_oom(void)
{
	ADD(g_enomem, 1);
	errno = ENOMEM;
}

void sm_arena_counter_addrs(struct sm_arena_counter_addrs *a)
{
	_Static_assert(sizeof(limit) == 8 && sizeof(g_live) == 8 && sizeof(g_mapped) == 8,
		       "the live statistics read 8-byte counters");
	*a = (struct sm_arena_counter_addrs){ &g_live, &g_peak, &g_touched, &g_mapped,
					      &g_chunks, &g_enomem, &limit };
}

void sm_arena_get_stats(struct sm_arena_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->backend = backend_name;
	int64_t live = LOAD(g_live);
	lock(&reg_lock);
	st->allocs = g_retired_allocs;
	st->frees = g_retired_frees;
	for (struct tcache *t = reg_head; t; t = t->next) {
		st->allocs += LOAD(t->nalloc);
		st->frees += LOAD(t->nfree);
		live += LOAD(t->delta);
	}
	unlock(&reg_lock);
	if (live < 0)
		live = 0;
	peak_update(live);
	st->live_bytes = (uint64_t)live;
	st->peak_bytes = (uint64_t)LOAD(g_peak);
	st->mapped_bytes = LOAD(g_mapped);
	st->touched_bytes = LOAD(g_touched);
	st->chunks = LOAD(g_chunks);
	st->enomem = LOAD(g_enomem);
	/* The limit in force now, even if no chunk was mapped since a privilege drop;
	 * only if the page lock is free (a report may be written from a signal
	 * handler that interrupted the arena). */
	if (pthread_mutex_trylock(&page_lock) == 0) {
		budget_init();
		unlock(&page_lock);
	}
	st->limit = LOAD(limit);
}

