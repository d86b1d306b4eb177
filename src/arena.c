/* SPDX-License-Identifier: MIT */
/*
 * The secret arena: a page allocator over secret chunks, small size classes in
 * slabs on top of it, and per-thread caches in front of those.
 *
 * Layout. One PROT_NONE range is reserved at start-up (a few times the budget,
 * within RLIMIT_AS); chunks (one memfd_secret file each, 256 KiB doubling to
 * 8 MiB, at most half of the budget left, or bigger for a big request) are
 * mapped into its lowest free gap, with an unmapped guard page on either side. A
 * chunk that holds nothing is unmapped (its memory and memlock charge go back to
 * the kernel) when the budget or the range runs short, and every chunk is when no
 * secret block is live. Every page of the range has an entry in the page map
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
 *  - a block is wiped (its usable size) when freed and when realloc moves it;
 *  - a free small block holds, in its first word, the next link mangled with its
 *    own address and a random cookie (glibc's safe-linking) and, in its second,
 *    the per-process random key: a free() that finds the key is a double free;
 *  - freed pages are reused before untouched ones are carved (a first touch of a
 *    secret page costs ~25 us and is never given back short of unmapping);
 *  - mapped bytes never exceed the limit (SECRETMEM_MAX, RLIMIT_MEMLOCK), read
 *    again before each chunk is mapped (a privilege drop changes it).
 * Never calls malloc, free or stdio; never reads an untouched page; never falls
 * back to ordinary memory when secret memory runs out.
 */
#include "config.h"
#include "arena.h"
#include "log.h"
#include "options.h"
#include "pages.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define TLS_IE __attribute__((tls_model("initial-exec")))

/* The page size is fixed at build time: the page map and the fast path index by
 * it. Init refuses to run on a kernel with another one. */
#define PAGE_SHIFT 12
#define PAGE ((size_t)1 << PAGE_SHIFT)

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
#define CACHE_BYTES 16384           /* a thread keeps about this much per class */

/* SPAN_GONE: the page-map entry of every page of a chunk that was unmapped (one
 * static descriptor), so that a stale pointer into it is still named a freed block. */
enum span_kind { SPAN_FREE = 1, SPAN_SLAB, SPAN_LARGE, SPAN_GONE };

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
	uint8_t touched;            /* FREE: may hold faulted-in pages (all zero) */
	uint8_t on_list;            /* SLAB: on its class's partial list */
	uint32_t used;              /* SLAB: slots out of the slab (cached or live) */
	uint32_t bump;              /* SLAB: slots ever carved, from the start */
	uintptr_t bump_end;         /* SLAB: start + bump * size; read by free unlocked */
	uintptr_t free;             /* SLAB: head of its freed slots (plain pointer) */
	struct span *next, *prev;   /* free bin, or partial list */
};

struct chunk {
	uintptr_t start;
	size_t len;
	int copy_fd;                /* fork copy in flight, else -1 */
	struct chunk *next;
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

struct tcache {
	struct tbin bin[NCLASS];
	uint64_t nalloc, nfree;     /* written by the owner, read by stats: relaxed atomics */
	int64_t delta;              /* live bytes not yet published to g_live */
	bool registered;
	/* The thread is exiting and tc_exit ran: glibc may still free (or allocate)
	 * in __libc_thread_freeres, after every destructor; this cache is then
	 * bypassed and never registered again (its memory dies with the thread). */
	bool dead;
	struct tcache *next, *prev;
};

uintptr_t sm_arena_base;
uintptr_t sm_arena_span;
uintptr_t sm_arena_reserved;

/* ---- state ---- */

static bool ready;
static enum sm_backend backend;
static const char *backend_name = "none";
static uint64_t blk_key, link_cookie;

static uint32_t class_size[NCLASS];
static uint32_t class_magic[NCLASS];   /* ceil(2^32 / size): exact division for slab offsets */
static uint16_t class_pages[NCLASS], class_slots[NCLASS], class_cap[NCLASS];
static uint8_t class_of[SMALL_MAX / 16 + 1];

static struct central central[NCLASS];

/* Everything below up to the stats is guarded by page_lock. */
static pthread_mutex_t page_lock = PTHREAD_MUTEX_INITIALIZER;
static struct span **pagemap;          /* one entry per page of the reservation */
static size_t pagemap_len, pagemap_rw; /* bytes reserved, bytes committed */
#define NBINS 64
static struct span *bins[2][NBINS];    /* [touched][bin] */
static struct span *desc_free;
static char *meta_cur, *meta_end;
static struct chunk *chunks;           /* in address order */
static struct chunk *chunk_free;       /* descriptors of unmapped chunks, for reuse */
static size_t next_chunk = CHUNK_FIRST;
static struct span gone = { .kind = SPAN_GONE };
static uintptr_t drop_top;             /* below: the parent's dropped chunks (fork drop) */
static int fork_copy_err;

/* Budget. */
static size_t limit;
static const char *limit_src;          /* "SECRETMEM_MAX", "RLIMIT_MEMLOCK" or NULL */
static size_t limit_shown, limit_room; /* for messages: the cap as the user set it, and
				        * what the fork copy keeps back from RLIMIT_MEMLOCK */

/* Stats: slow paths only. */
static uint64_t g_mapped, g_touched, g_chunks, g_enomem;
static int64_t g_live, g_peak;
static uint64_t g_retired_allocs, g_retired_frees;

/* Thread caches. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tcache *reg_head;
static pthread_key_t tc_key;
static __thread struct tcache tc TLS_IE;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define ADD(x, v) __atomic_add_fetch(&(x), (v), __ATOMIC_RELAXED)

/* ---- small helpers ---- */

static inline size_t page_index(uintptr_t a)
{
	return (a - sm_arena_base) >> PAGE_SHIFT;
}

static inline struct span *span_at(uintptr_t a)
{
	return __atomic_load_n(&pagemap[page_index(a)], __ATOMIC_RELAXED);
}

static void set_pages(struct span *s, uintptr_t start, size_t npages)
{
	size_t i = page_index(start);
	for (size_t k = 0; k < npages; k++)
		__atomic_store_n(&pagemap[i + k], s, __ATOMIC_RELAXED);
}

static inline uintptr_t mangle(const struct blk *at, uintptr_t p)
{
	return p ^ ((uintptr_t)at >> PAGE_SHIFT) ^ link_cookie;
}

__attribute__((noreturn, cold, noinline)) static void corrupt(const void *at)
{
	sm_abort("malloc(): corrupted free list of secret blocks (at %p)", at);
}

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

static void lock(pthread_mutex_t *m)
{
	pthread_mutex_lock(m);
}

static void unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
}

/* ---- size classes ---- */

static void classes_init(void)
{
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
		uint32_t cap = CACHE_BYTES / sz;
		class_cap[c] = (uint16_t)(cap < 4 ? 4 : cap > 128 ? 128 : cap);
		for (; idx <= sz / 16; idx++)
			class_of[idx] = (uint8_t)c;
	}
}

/* ---- metadata memory (ordinary pages, our own so that fork needs no other lock) ---- */

static void *meta_alloc(size_t size)
{
	size = round_up(size, 16);
	if ((size_t)(meta_end - meta_cur) < size) {
		char *b = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (b == MAP_FAILED)
			return NULL;
		meta_cur = b;
		meta_end = b + (64 << 10);
	}
	void *p = meta_cur;
	meta_cur += size;
	return p;
}

static struct span *desc_new(void)
{
	struct span *s = desc_free;
	if (s)
		desc_free = s->next;
	else if (!(s = meta_alloc(sizeof(*s))))
		return NULL;
	memset(s, 0, sizeof(*s));
	return s;
}

static void desc_put(struct span *s)
{
	s->kind = 0;
	s->next = desc_free;
	desc_free = s;
}

/* ---- page allocator (page_lock held) ---- */

static unsigned bin_of(size_t n)
{
	if (n <= 32)
		return (unsigned)n - 1;
	unsigned b = 32 + (63 - (unsigned)__builtin_clzl(n)) - 5;
	return b < NBINS ? b : NBINS - 1;
}

static void list_push(struct span **head, struct span *s)
{
	s->prev = NULL;
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
}

static void list_remove(struct span **head, struct span *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

static void bin_insert(struct span *s)
{
	list_push(&bins[s->touched][bin_of(s->npages)], s);
}

static void bin_remove(struct span *s)
{
	list_remove(&bins[s->touched][bin_of(s->npages)], s);
}

/* Moves the first k pages of s (not on a list) into a new span; O(k). */
static struct span *split_head(struct span *s, size_t k)
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
static struct span *split_tail(struct span *s, size_t k)
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
static void span_free(struct span *s, bool touched)
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

static size_t budget_left(void)
{
	return g_mapped < limit ? limit - g_mapped : 0;
}

static const char *errname(int err);

/* Once per process: the first refusal says which limit and how to raise it. */
static void warn_oom(size_t want, int err)
{
	static bool warned;
	if (warned)
		return;
	warned = true;
	if (err == -EAGAIN)
		sm_warn("out of secret memory: RLIMIT_MEMLOCK reached while mapping %zu more bytes "
			"(memory locked elsewhere in the process counts too); raise it with "
			"`ulimit -l` or systemd LimitMEMLOCK=", want);
	else if (err == -ENOMEM && limit_src && g_mapped + want > limit)
		sm_warn("out of secret memory: the limit is %zu bytes (%s); raise it with %s",
			limit_shown, limit_src,
			limit_src[0] == 'S' ? "SECRETMEM_MAX" :
			"`ulimit -l`, systemd LimitMEMLOCK=, or SECRETMEM_MAX (at most the limit)");
	else
		sm_warn("out of secret memory: mapping %zu more bytes failed (%s; %zu bytes mapped, "
			"address range %zu bytes)", want, errname(-err), (size_t)g_mapped,
			(size_t)sm_arena_reserved);
}

static void budget_init(void);

/* Whether every span of chunk c is free (no block, no slab). */
static bool chunk_empty(const struct chunk *c)
{
	for (uintptr_t a = c->start; a < c->start + c->len;) {
		const struct span *s = span_at(a);
		if (s->kind != SPAN_FREE)
			return false;
		a = s->start + s->npages * PAGE;
	}
	return true;
}

/* Unmaps empty chunk c (after prev, or the first): the kernel frees its pages and
 * its memlock charge once the mapping is gone (its fd was closed when it was
 * mapped). The page map names the range gone, so that a stale pointer into it
 * is still a freed block. false if the reservation could not be put back. */
static bool chunk_unmap(struct chunk *c, struct chunk *prev)
{
	if (sm_pages_unmap_to_reserved((void *)c->start, c->len) != 0)
		return false;
	size_t touched = 0;
	for (uintptr_t a = c->start; a < c->start + c->len;) {
		struct span *s = span_at(a);
		a = s->start + s->npages * PAGE;
		if (s->touched)
			touched += s->npages * PAGE;
		bin_remove(s);
		set_pages(&gone, s->start, s->npages);
		desc_put(s);
	}
	if (prev)
		prev->next = c->next;
	else
		chunks = c->next;
	c->next = chunk_free;
	chunk_free = c;
	STORE(g_mapped, g_mapped - c->len);
	STORE(g_chunks, g_chunks - 1);
	STORE(g_touched, g_touched - touched);
	return true;
}

/* Unmaps every chunk that holds nothing; returns how many. */
static unsigned release_empty(void)
{
	unsigned n = 0;
	for (struct chunk *c = chunks, *prev = NULL, *next; c; c = next) {
		next = c->next;
		if (chunk_empty(c) && chunk_unmap(c, prev))
			n++;
		else
			prev = c;
	}
	return n;
}

/* The lowest gap of the reservation that holds len bytes with an unmapped guard
 * page on either side (page 0 is one; so is the page after every chunk), above
 * the parent's chunks a fork dropped; *prev: the chunk before it. 0 if none. */
static uintptr_t place(size_t len, struct chunk **prev)
{
	uintptr_t a = sm_arena_base + PAGE, end = sm_arena_base + sm_arena_reserved;
	if (a < drop_top)
		a = drop_top;
	*prev = NULL;
	for (struct chunk *c = chunks; c; c = c->next) {
		if (a + len + PAGE <= c->start)
			break;
		if (c->start + c->len + PAGE > a)
			a = c->start + c->len + PAGE;
		*prev = c;
	}
	return a + len + PAGE <= end && a + len > a ? a : 0;
}

/* How big a new chunk for need bytes is: doubling from 256 KiB to 8 MiB while the
 * budget is far off, but never more than half of what is left, nor less than
 * needed (each chunk is charged its whole size against the limit, used or not, and
 * a block cannot span two chunks: bench/limit_bench measured a quarter, a half and
 * no bound; a half left the most usable after rounds of random frees). 0 if need
 * does not fit in what is left. */
static size_t chunk_len(size_t need)
{
	size_t left = budget_left() & ~(PAGE - 1), len = next_chunk;
	if (len > left / 2)
		len = (left / 2) & ~(PAGE - 1);
	if (len < CHUNK_MIN) /* and no smaller than 64 KiB: a remnant would go unused */
		len = CHUNK_MIN;
	if (len < need)
		len = round_up(need, CHUNK_MIN);
	if (len > left)
		len = left;
	return len < need ? 0 : len;
}

/* Maps a chunk big enough for n pages at alignment align; its pages become one
 * untouched free span. 0 or -errno (-ENOMEM: over the budget or the reservation).
 * The limit is read again first: a server that drops root (CAP_IPC_LOCK) has the
 * kernel enforce RLIMIT_MEMLOCK from then on. Short of budget or of address range,
 * or refused by the kernel for memlock, it gives back the chunks that hold nothing
 * and tries once more. */
static int grow(size_t n, size_t align)
{
	size_t need = n * PAGE + (align > PAGE ? align - PAGE : 0), len;
	struct chunk *prev;
	uintptr_t at;
	int err;

	budget_init();
	for (int retry = 0;; retry++) {
		len = chunk_len(need);
		at = len ? place(len, &prev) : 0;
		if (at) {
			/* The page map entries for the chunk and its guard pages must be
			 * writable first. */
			size_t pm_end = round_up((page_index(at + len) + 1) * sizeof(*pagemap), PAGE);
			if (pm_end > pagemap_rw) {
				if (mprotect((char *)pagemap + pagemap_rw, pm_end - pagemap_rw,
					     PROT_READ | PROT_WRITE) != 0)
					return -errno;
				pagemap_rw = pm_end;
			}
			err = sm_pages_map_chunk(backend, (void *)at, len, sm_opt.fork == SM_FORK_DROP);
			if (!err)
				break;
		} else {
			err = -ENOMEM;
		}
		if (retry || (err != -ENOMEM && err != -EAGAIN) || !release_empty())
			return err;
	}

	struct span *s = desc_new();
	struct chunk *c = chunk_free;
	if (c)
		chunk_free = c->next;
	else
		c = meta_alloc(sizeof(*c));
	if (!s || !c) {
		if (s)
			desc_put(s);
		if (c) {
			c->next = chunk_free;
			chunk_free = c;
		}
		sm_pages_unmap_to_reserved((void *)at, len);
		return -ENOMEM;
	}
	*c = (struct chunk){ at, len, -1, prev ? prev->next : chunks };
	if (prev)
		prev->next = c;
	else
		chunks = c;
	/* The guard pages may have been part of a chunk unmapped earlier. */
	__atomic_store_n(&pagemap[page_index(at - PAGE)], NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&pagemap[page_index(at + len)], NULL, __ATOMIC_RELAXED);
	s->start = at;
	s->npages = len >> PAGE_SHIFT;
	set_pages(s, s->start, s->npages);
	span_free(s, false);
	if (at + len + PAGE - sm_arena_base > sm_arena_span)
		STORE(sm_arena_span, at + len + PAGE - sm_arena_base);
	if (len == next_chunk && next_chunk < CHUNK_MAX)
		next_chunk *= 2;
	STORE(g_mapped, g_mapped + len);
	STORE(g_chunks, g_chunks + 1);
	return 0;
}

/* n pages aligned to align, all zero, or NULL (page_lock held). */
static struct span *pages_alloc(size_t n, size_t align)
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

/* ---- wiping ---- */

/* explicit_bzero of the resident pages of [p, p+len) only: a large block the
 * program never filled must not be faulted in just to be cleared. */
static void wipe_resident(void *p, size_t len)
{
	enum { W = 256 };
	unsigned char vec[W];
	char *a = p;
	if (len <= 16 * PAGE) {
		explicit_bzero(p, len);
		return;
	}
	for (size_t off = 0; off < len; off += W * PAGE) {
		size_t n = len - off < W * PAGE ? len - off : W * PAGE;
		if (sm_pages_resident(a + off, n, (unsigned char *)vec) != 0) {
			explicit_bzero(a + off, n);
			continue;
		}
		for (size_t i = 0; i < n / PAGE; i++)
			if (vec[i] & 1)
				explicit_bzero(a + off + i * PAGE, PAGE);
	}
}

/* ---- stats ---- */

static void peak_update(int64_t live)
{
	int64_t p = LOAD(g_peak);
	while (live > p && !__atomic_compare_exchange_n(&g_peak, &p, live, true,
							__ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void publish_live(void)
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

static void count_oom(void)
{
	ADD(g_enomem, 1);
	errno = ENOMEM;
}

/* ---- thread caches ---- */

static void tc_exit(void *arg);

static void tc_register(void)
{
	if (tc.dead)
		return;
	lock(&reg_lock);
	tc.prev = NULL;
	tc.next = reg_head;
	if (reg_head)
		reg_head->prev = &tc;
	reg_head = &tc;
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
 * then fresh ones carved from the current slab, then a new slab. */
static unsigned central_take(unsigned c, unsigned want)
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
			s = pages_alloc(class_pages[c], PAGE);
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
static void slab_release(struct central *ce, struct span *s)
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
static void slot_return(struct central *ce, struct blk *x)
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
static void central_put(unsigned c, unsigned n)
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

static void tc_exit(void *arg)
{
	(void)arg;
	for (unsigned c = 0; c < NCLASS; c++)
		central_put(c, tc.bin[c].count);
	publish_live();
	lock(&reg_lock);
	g_retired_allocs += tc.nalloc;
	g_retired_frees += tc.nfree;
	if (tc.prev)
		tc.prev->next = tc.next;
	else
		reg_head = tc.next;
	if (tc.next)
		tc.next->prev = tc.prev;
	STORE(tc.nalloc, 0);
	STORE(tc.nfree, 0);
	tc.registered = false;
	tc.dead = true;
	unlock(&reg_lock);
}

/* What a dead thread cache would have counted goes to the retired totals. */
static void count_dead(uint64_t allocs, uint64_t frees)
{
	lock(&reg_lock);
	g_retired_allocs += allocs;
	g_retired_frees += frees;
	unlock(&reg_lock);
}

/* ---- small blocks ---- */

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
	lock(&page_lock);
	struct span *s = pages_alloc(n, PAGE);
	if (s)
		s->kind = SPAN_LARGE;
	unlock(&page_lock);
	return s ? (void *)s->start : NULL;
}

void sm_arena_own_free(void *p, size_t size)
{
	struct span *s = span_at((uintptr_t)p);
	size_t len = round_up(size ? size : 1, PAGE);
	/* Only the pages faulted in: a stream's buffer is often never used, and
	 * wiping it would fault it in (~25 us a page) at every idle release. */
	unsigned char vec[SMALL_MAX / PAGE * 2];
	if (len <= sizeof(vec) * PAGE && sm_pages_resident(p, len, vec) == 0) {
		for (size_t i = 0; i < len / PAGE; i++)
			if (vec[i] & 1)
				explicit_bzero((char *)p + i * PAGE, PAGE);
	} else {
		wipe_resident(p, len);
	}
	lock(&page_lock);
	span_free(s, true);
	unlock(&page_lock);
}

/* The standard streams want secret buffers: at the first secret allocation, and
 * the first after an idle release (checked on the slow paths only; the first
 * allocation after either takes one, as every thread cache is empty). */
static bool streams_want = true;
static void (*hook_hold)(void), (*hook_give_back)(void);

void sm_arena_streams_hooks(void (*hold)(void), void (*give_back)(void))
{
	hook_hold = hold;
	hook_give_back = give_back;
}

static __attribute__((noinline)) void streams_hold(void)
{
	if (!hook_hold || !__atomic_exchange_n(&streams_want, false, __ATOMIC_RELAXED))
		return;
	hook_hold();
}

#define STREAMS_CHECK() \
	do { \
		if (unlikely(LOAD(streams_want)) && !tc.dead) \
			streams_hold(); \
	} while (0)

static __attribute__((noinline)) void *small_alloc_slow(unsigned c)
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
	if (!central_take(c, want)) {
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

static inline void *small_alloc(unsigned c)
{
	void *p = small_pop(c);
	return likely(p) ? p : small_alloc_slow(c);
}

/* ---- large blocks ---- */

static void *large_alloc(size_t size, size_t align)
{
	if (!ready || size > sm_arena_reserved) {
		count_oom();
		return NULL;
	}
	size_t n = round_up(size ? size : 1, PAGE) >> PAGE_SHIFT;
	lock(&page_lock);
	struct span *s = pages_alloc(n, align);
	if (s)
		s->kind = SPAN_LARGE;
	unlock(&page_lock);
	if (!s) {
		count_oom();
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

static void release_idle(void);

static void large_free(struct span *s)
{
	size_t len = s->npages * PAGE;
	wipe_resident((void *)s->start, len);
	lock(&page_lock);
	span_free(s, true);
	unlock(&page_lock);
	if (!tc.registered)
		tc_register();
	STORE(tc.nfree, tc.nfree + 1);
	STORE(tc.delta, tc.delta - (int64_t)len);
	publish_live();
	if (tc.dead)
		count_dead(0, 1);
	else if (tc.nfree == tc.nalloc)
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

/* The thread's bin c went over its bound: give half of it back. */
static __attribute__((noinline)) void cache_overflow(unsigned c)
{
	int saved = errno;
	publish_live();
	central_put(c, tc.bin[c].count - class_cap[c] / 2);
	errno = saved;
}

/* No secret block is live (this thread has freed as many as it allocated: check
 * all of them): give every chunk back, so that no secret mapping is left (while
 * one exists the kernel refuses to hibernate the machine). Empties this thread's
 * cache and the slabs kept back; blocks cached by other threads keep their chunks.
 * The next secret allocation maps a chunk again and faults its pages in anew
 * (bench/results: the cost of a cycle). Only chunks whose every span is free are
 * unmapped, under page_lock, so a race with another thread costs nothing worse
 * than a chunk kept. */
static __attribute__((noinline)) void release_idle(void)
{
	int saved = errno;
	uint64_t a, f;
	lock(&reg_lock);
	a = g_retired_allocs;
	f = g_retired_frees;
	for (struct tcache *t = reg_head; t; t = t->next) {
		a += LOAD(t->nalloc);
		f += LOAD(t->nfree);
	}
	unlock(&reg_lock);
	if (a != f || !ready) {
		errno = saved;
		return;
	}
	if (hook_give_back)
		hook_give_back();
	publish_live();
	for (unsigned c = 0; c < NCLASS; c++)
		if (tc.bin[c].count)
			central_put(c, tc.bin[c].count);
	for (unsigned c = 0; c < NCLASS; c++) {
		struct central *ce = &central[c];
		lock(&ce->lock);
		struct span *s = ce->cur;
		if (s && !s->used) { /* all its carved slots are back, on its free list */
			ce->cur = NULL;
			slab_release(ce, s);
		}
		if ((s = ce->spare)) {
			ce->spare = NULL;
			lock(&page_lock);
			span_free(s, true);
			unlock(&page_lock);
		}
		unlock(&ce->lock);
	}
	lock(&page_lock);
	release_empty();
	bool kept = LOAD(g_chunks) != 0;
	unlock(&page_lock);
	/* Chunks kept (blocks cached by other threads, a stream in use): the streams
	 * go on holding secret buffers there, else at the next secret allocation. */
	STORE(streams_want, true);
	if (kept)
		streams_hold();
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

/* ---- freeing a small block ---- */

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
	else if (unlikely(nfree == tc.nalloc))
		release_idle();
}

static __attribute__((noinline)) void slot_free(struct blk *x, unsigned c, uint32_t sz)
{
	explicit_bzero(x, sz);
	slot_push(x, c, sz);
}

/* The wipe of a freed slot of up to 256 bytes, the common case. Programs free
 * blocks of mixed sizes, and a wipe that branches on the size (memset's dispatch,
 * or a loop) then mispredicts a branch or two a call: that, not the stores, made
 * the wipe most of the cost of a small secret pair (bench/results). So it does not
 * branch on the size: eight 32-byte AVX2 stores, four up from the start and four
 * down from the end, cover any slot of 64 to 256 bytes (at most 128 bytes: the
 * second four repeat the first), and three 16-byte stores clamped to the end cover
 * any of 16 to 64 ([0, 16) gets the link words next). One branch chooses between
 * the two. Without AVX2: slot_free. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#ifdef HAVE_CPU_FEATURE_ACTIVE
#include <sys/platform/x86.h>
#else
#include <cpuid.h>
#endif
#define WIPE_AVX2 1
static bool have_avx2;

__attribute__((target("avx2"), noinline)) static void slot_free_avx2(struct blk *x, unsigned c,
								  uint32_t sz)
{
	char *b = (char *)x;
	/* Unaligned stores (as fast as aligned ones on aligned data), through void *:
	 * the vector types' alignment is no claim about b. */
#define AT128(off) ((__m128i *)(void *)(b + (off)))
#define AT256(off) ((__m256i *)(void *)(b + (off)))
	if (sz <= 64) {
		size_t last = sz - 16;
		for (size_t k = 16; k < 64; k += 16)
			_mm_storeu_si128(AT128(k < last ? k : last), _mm_setzero_si128());
	} else {
		__m256i z = _mm256_setzero_si256();
		size_t mid = sz > 128 ? 64 : 0;
		_mm256_storeu_si256(AT256(0), z);
		_mm256_storeu_si256(AT256(32), z);
		_mm256_storeu_si256(AT256(mid), z);
		_mm256_storeu_si256(AT256(mid + 32), z);
		_mm256_storeu_si256(AT256(sz - mid - 64), z);
		_mm256_storeu_si256(AT256(sz - mid - 32), z);
		_mm256_storeu_si256(AT256(sz - 64), z);
		_mm256_storeu_si256(AT256(sz - 32), z);
	}
#undef AT128
#undef AT256
	__asm__ volatile("" : : "r"(b) : "memory"); /* the stores are not dead */
	slot_push(x, c, sz);
}
#endif

/* Whether the CPU and the kernel let us use AVX2. */
static bool cpu_has_avx2(void)
{
#if !defined(WIPE_AVX2)
	return false;
#elif defined(HAVE_CPU_FEATURE_ACTIVE)
	return CPU_FEATURE_ACTIVE(AVX2); /* the loader's findings: no CPUID */
#else
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX))
		return false;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	if ((lo & 6) != 6) /* the kernel saves the YMM state */
		return false;
	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_AVX2);
#endif
}

bool sm_arena_vector_wipe(bool on)
{
#ifdef WIPE_AVX2
	bool was = have_avx2;
	have_avx2 = on && cpu_has_avx2();
	return was;
#else
	(void)on;
	return false;
#endif
}

static void wipe_init(void)
{
#ifdef WIPE_AVX2
	have_avx2 = cpu_has_avx2();
#endif
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
			if (likely(sz <= 256 && have_avx2)) {
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
	return s->kind == SPAN_SLAB ? class_size[s->cls] : s->npages * PAGE;
}

/* Moves p (usable bytes) to a new block of size bytes. */
static void *move(void *p, size_t usable, size_t size)
{
	void *q = sm_arena_malloc(size);
	if (!q)
		return NULL;
	memcpy(q, p, usable < size ? usable : size);
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
	if (r && r->kind == SPAN_FREE && r->npages >= more) {
		bool was_touched = r->touched;
		bin_remove(r);
		struct span *h = r->npages == more ? r : split_head(r, more);
		if (h) {
			if (h != r)
				bin_insert(r);
			set_pages(s, h->start, more);
			desc_put(h);
			s->npages = n;
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
	wipe_resident((void *)(s->start + n * PAGE), (s->npages - n) * PAGE);
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
	if (n < old) {
		shrink_in_place(s, n);
	} else if (n > old && !grow_in_place(s, n)) {
		return move(p, old * PAGE, size);
	}
	STORE(tc.delta, tc.delta + ((int64_t)s->npages - (int64_t)old) * (int64_t)PAGE);
	publish_live();
	return p;
}

/* ---- initialisation ---- */

static const char *errname(int err)
{
	switch (err) {
	case EPERM: return "EPERM";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EMFILE: return "EMFILE";
	case ENFILE: return "ENFILE";
	case EINVAL: return "EINVAL";
	case ENOSYS: return "ENOSYS";
	case EACCES: return "EACCES";
	case EBADF: return "EBADF";
	case EFAULT: return "EFAULT";
	case ENODEV: return "ENODEV";
	default: return "unexpected error"; /* strerror may allocate */
	}
}

/* Opens (and closes) one secret file to learn what the kernel offers. */
static void probe_backend(void)
{
	int fd;
	if (sm_opt.mode == SM_MODE_UNCACHED) {
		fd = sm_pages_secret_fd(SM_SECRETMEM_UNCACHED);
		if (fd >= 0) {
			backend = SM_BACKEND_SECRET_UNCACHED;
			backend_name = "memfd_secret (uncached)";
			close(fd);
			return;
		}
		if (fd == -EINVAL) {
			if (sm_opt.fallback == SM_FALLBACK_NONE)
				sm_die("SECRETMEM_MODE=uncached: this kernel offers exclusive secret memory "
				       "only (uncached mode was dropped before memfd_secret was merged); "
				       "set SECRETMEM_MODE=exclusive or SECRETMEM_FALLBACK=exclusive");
			sm_warn("SECRETMEM_MODE=uncached: this kernel offers exclusive secret memory "
				"only; using exclusive mode (SECRETMEM_FALLBACK allows it)");
		}
	}
	fd = sm_pages_secret_fd(0);
	if (fd >= 0) {
		backend = SM_BACKEND_SECRET;
		backend_name = "memfd_secret";
		close(fd);
		return;
	}
	if (fd == -ENOSYS) {
		if (sm_opt.fallback != SM_FALLBACK_MLOCK)
			sm_die("memfd_secret(2) is not available (ENOSYS): the kernel is older than 5.14, "
			       "or built without CONFIG_SECRETMEM, or (5.14 to 6.4) booted without "
			       "secretmem.enable=1, or a seccomp filter blocks it; fix that, or set "
			       "SECRETMEM_FALLBACK=mlock to accept locked, undumpable ordinary memory");
		sm_warn("memfd_secret(2) is not available (ENOSYS); SECRETMEM_FALLBACK=mlock: secret "
			"blocks are locked and left out of core dumps, but stay in the kernel's direct "
			"map (root can still read them, e.g. through /proc/PID/mem)");
		backend = SM_BACKEND_MLOCK;
		backend_name = "mlock";
		return;
	}
	sm_die("memfd_secret(2) failed (%s): %s", errname(-fd),
	       fd == -EPERM ? "refused by a seccomp filter or security module; allow syscall "
			      "memfd_secret for this program" :
	       fd == -EMFILE || fd == -ENFILE ? "too many open files; raise `ulimit -n`" :
	       "cannot create secret memory");
}

/* The budget: SECRETMEM_MAX if set, and RLIMIT_MEMLOCK where the kernel enforces it.
 * It does not with CAP_IPC_LOCK in the effective set or an infinite limit (mmap of
 * a secretmem file then never fails with EAGAIN), so neither caps us then; the
 * reservation does. A fork copy maps a window of the child's new file in the
 * parent for a moment, which RLIMIT_MEMLOCK charges too: keep room for it. */
static void budget_init(void)
{
	struct rlimit rl;
	bool enforced = getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
			!sm_pages_cap_ipc_lock();
	size_t kern = SIZE_MAX, room = 0;
	if (enforced) {
		room = backend != SM_BACKEND_MLOCK && sm_opt.fork == SM_FORK_COPY ?
		       SM_PAGES_COPY_WINDOW : 0;
		kern = rl.rlim_cur > room ? (size_t)rl.rlim_cur - room : 0;
	}
	size_t lim = sm_arena_reserved;
	limit_src = NULL;
	if (sm_opt.max && sm_opt.max <= kern) {
		lim = sm_opt.max;
		limit_src = "SECRETMEM_MAX";
		limit_shown = sm_opt.max;
	} else if (enforced) {
		lim = kern;
		limit_src = "RLIMIT_MEMLOCK";
		limit_shown = (size_t)rl.rlim_cur;
		limit_room = room; /* what the message adds to the chunk it needs */
	}
	STORE(limit, lim & ~(PAGE - 1)); /* read by secretmem-inspect from another process */
}

/* How much address range to reserve: a few times the budget (chunks are placed in
 * the lowest gap that fits, so the range in use stays near what is mapped), at
 * most an eighth of RLIMIT_AS (ulimit -v), and 64 GiB when nothing limits it.
 * Costs no memory; its page map is committed only where chunks are. */
static size_t reserve_want(void)
{
	size_t want = RESERVE_MAX;
	if (limit < RESERVE_MAX / RESERVE_FACTOR)
		want = limit * RESERVE_FACTOR < RESERVE_LOW ? RESERVE_LOW : limit * RESERVE_FACTOR;
	struct rlimit as;
	if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY && as.rlim_cur / 8 < want)
		want = (size_t)as.rlim_cur / 8;
	want &= ~(PAGE - 1);
	return want < RESERVE_MIN ? RESERVE_MIN : want;
}

static void init(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	if (ps != (long)PAGE)
		sm_die("page size %ld is not supported (built for %zu)", ps, PAGE);
	classes_init();
	wipe_init();
	if (getrandom(&blk_key, sizeof(blk_key), 0) != sizeof(blk_key) ||
	    getrandom(&link_cookie, sizeof(link_cookie), 0) != sizeof(link_cookie))
		sm_die("getrandom failed: cannot seed the secret heap's integrity checks");
	blk_key |= 1; /* never zero: fresh blocks are zero */

	probe_backend();
	sm_arena_reserved = RESERVE_MAX;
	budget_init(); /* the budget sizes the reservation */
	size_t span = reserve_want();
	void *base = sm_pages_reserve(&span, RESERVE_MIN);
	if (!base)
		sm_die("cannot reserve address space for secret memory (at least %zu bytes); "
		       "check `ulimit -v`", RESERVE_MIN);
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

	if (pthread_atfork(sm_arena_fork_prepare, sm_arena_fork_parent, sm_arena_fork_child) != 0)
		sm_die("pthread_atfork failed: cannot protect secret memory across fork()");
	__atomic_store_n(&ready, true, __ATOMIC_RELEASE);
}

void sm_arena_init(void)
{
	if (sm_opt.mode != SM_MODE_OFF)
		pthread_once(&init_once, init);
}

/* ---- fork ---- */

/* Makes a new file per chunk holding the chunk's live pages: in-use slabs up to
 * their bump point and large blocks, only where resident. Free runs are zero, and
 * so is the new file. All locks are held. */
static int copy_chunks(void)
{
	for (struct chunk *c = chunks; c; c = c->next) {
		int fd = sm_pages_new_file(backend, c->len);
		if (fd < 0)
			return fd;
		c->copy_fd = fd;
		for (uintptr_t a = c->start; a < c->start + c->len;) {
			struct span *s = span_at(a);
			size_t len = 0;
			if (s->kind == SPAN_SLAB)
				len = round_up(s->bump_end - s->start, PAGE);
			else if (s->kind == SPAN_LARGE)
				len = s->npages * PAGE;
			if (len) {
				int err = sm_pages_copy_in(fd, s->start - c->start, (void *)s->start, len);
				if (err)
					return err;
			}
			a = s->start + s->npages * PAGE;
		}
	}
	return 0;
}

static void close_copies(void)
{
	for (struct chunk *c = chunks; c; c = c->next) {
		if (c->copy_fd >= 0)
			close(c->copy_fd);
		c->copy_fd = -1;
	}
}

void sm_arena_fork_prepare(void)
{
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
		return;
	lock(&reg_lock);
	for (unsigned c = 0; c < NCLASS; c++)
		lock(&central[c].lock);
	lock(&page_lock);
	fork_copy_err = 0;
	if (sm_opt.fork == SM_FORK_COPY && backend != SM_BACKEND_MLOCK) {
		int saved = errno;
		fork_copy_err = copy_chunks();
		if (fork_copy_err) {
			close_copies();
			sm_error("fork(): cannot give the child its own copy of secret memory (%s); "
				 "the child starts with none, as with SECRETMEM_FORK=drop",
				 errname(-fork_copy_err));
		}
		errno = saved;
	}
}

void sm_arena_fork_parent(void)
{
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
		return;
	close_copies();
	unlock(&page_lock);
	for (unsigned c = NCLASS; c-- > 0;)
		unlock(&central[c].lock);
	unlock(&reg_lock);
}

/* The child's arena starts empty; the parent's chunks become reserved holes, and
 * new chunks go above them, so a stale pointer faults and free() knows it. */
static void drop_all(void)
{
	for (struct chunk *c = chunks; c; c = c->next) {
		sm_pages_unmap_to_reserved((void *)c->start, c->len);
		if (c->copy_fd >= 0)
			close(c->copy_fd);
	}
	chunks = NULL; /* their descriptors are abandoned too */
	/* The page map is private anonymous memory: DONTNEED makes it read zero. */
	madvise(pagemap, pagemap_rw, MADV_DONTNEED);
	memset(bins, 0, sizeof(bins));
	desc_free = NULL; /* the old descriptors are abandoned: a few KiB */
	for (unsigned c = 0; c < NCLASS; c++) {
		central[c].partial = central[c].cur = central[c].spare = NULL;
		tc.bin[c].head = 0;
		tc.bin[c].count = 0;
	}
	drop_top = sm_arena_base + sm_arena_span;
	next_chunk = CHUNK_FIRST;
	g_mapped = g_touched = g_chunks = 0;
	g_live = g_peak = 0;
	tc.delta = 0;
}

void sm_arena_fork_child(void)
{
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
		return;
	int saved = errno;
	pthread_mutex_init(&reg_lock, NULL);
	pthread_mutex_init(&page_lock, NULL);
	for (unsigned c = 0; c < NCLASS; c++)
		pthread_mutex_init(&central[c].lock, NULL);
	/* Only this thread lives on; the others' caches are abandoned (bounded). */
	reg_head = NULL;
	if (tc.registered) {
		tc.next = tc.prev = NULL;
		reg_head = &tc;
	}

	if (sm_opt.fork == SM_FORK_DROP || fork_copy_err) {
		drop_all();
	} else if (backend == SM_BACKEND_MLOCK) {
		/* Copy-on-write already gives the child its own pages; mlock is not
		 * inherited, so lock them again. */
		for (struct chunk *c = chunks; c; c = c->next)
			sm_pages_relock((void *)c->start, c->len);
	} else {
		int err = 0;
		for (struct chunk *c = chunks; c && !err; c = c->next)
			err = sm_pages_map_fd((void *)c->start, c->len, c->copy_fd);
		if (err) {
			sm_error("fork(): the child cannot map its copy of secret memory (%s); "
				 "it starts with none", errname(-err));
			drop_all();
		}
		close_copies();
	}
	fork_copy_err = 0;
	errno = saved;
}

/* ---- stats ---- */

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

/* ---- consistency check (tests, fuzzers, --enable-debug) ---- */

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

	/* Chunks lie in address order inside the owned range, each with an unmapped
	 * guard page on either side, and add up to what is counted as mapped. */
	uint64_t mapped = 0, nchunks = 0;
	for (const struct chunk *ch = chunks; ch; ch = ch->next) {
		mapped += ch->len;
		nchunks++;
		if (ch->start < sm_arena_base + PAGE || ch->start + ch->len + PAGE - sm_arena_base > sm_arena_span ||
		    (ch->next && ch->start + ch->len + PAGE > ch->next->start) || !ch->len || (ch->len & (PAGE - 1)))
			PROBLEM(&c, "chunk at %p (%zu bytes) overlaps its neighbour or leaves the range",
				(void *)ch->start, ch->len);
		else if (span_at(ch->start - PAGE) || span_at(ch->start + ch->len))
			PROBLEM(&c, "chunk at %p: a guard page has a span", (void *)ch->start);
	}
	if (mapped != g_mapped || nchunks != g_chunks || g_mapped > limit)
		PROBLEM(&c, "chunks: %llu bytes in %llu, counted %llu in %llu (limit %zu)",
			(unsigned long long)mapped, (unsigned long long)nchunks,
			(unsigned long long)g_mapped, (unsigned long long)g_chunks, limit);
	/* Spans tile every chunk exactly, and the page map agrees with them. */
	for (const struct chunk *ch = chunks; ch; ch = ch->next) {
		const struct span *left = NULL;
		for (uintptr_t a = ch->start; a < ch->start + ch->len;) {
			const struct span *s = span_at(a);
			if (!s || s->start != a || !s->npages ||
			    s->start + s->npages * PAGE > ch->start + ch->len) {
				PROBLEM(&c, "page %p of the chunk at %p: no span starts there", (void *)a,
					(void *)ch->start);
				break;
			}
			for (size_t i = 1; i < s->npages; i++)
				if (span_at(a + i * PAGE) != s)
					PROBLEM(&c, "page %p: the page map names another span than %p",
						(void *)(a + i * PAGE), (void *)s->start);
			if (s->kind == SPAN_SLAB)
				check_slab(&c, s);
			else if (s->kind == SPAN_FREE)
				check_free(&c, s, left);
			else if (s->kind != SPAN_LARGE)
				PROBLEM(&c, "span at %p has kind %u", (void *)s->start, s->kind);
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

	unlock(&page_lock);
	for (unsigned k = NCLASS; k-- > 0;)
		unlock(&central[k].lock);
	unlock(&reg_lock);
	return c.problems;
}
