/* SPDX-License-Identifier: MIT */
/*
 * The arena's chunks: secret files mapped into the reservation (lowest gap that
 * fits, an unmapped guard page on either side), sized against the budget
 * (SECRETMEM_MAX, RLIMIT_MEMLOCK read again before each chunk is mapped), and
 * given back: an empty chunk when the budget or the range runs short, every chunk
 * when no secret block is live (idle release). Also the backend probe at start-up.
 * Keeps: mapped bytes never exceed the limit. Runs with page_lock held unless
 * said otherwise. Never calls malloc; never falls back to ordinary memory.
 */
#include "config.h"
#include "arena-internal.h"
#include "meta.h"
#include "options.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct chunk *chunks;
struct chunk *chunk_free;
size_t next_chunk = CHUNK_FIRST;
uintptr_t drop_top;
enum sm_backend backend;
const char *backend_name = "none";
size_t limit;
const char *limit_src;
size_t limit_shown, limit_room;

/* ---- the budget ---- */

static size_t budget_left(void)
{
	return g_mapped < limit ? limit - g_mapped : 0;
}


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

/* The budget: SECRETMEM_MAX if set, and RLIMIT_MEMLOCK where the kernel enforces it.
 * It does not with CAP_IPC_LOCK in the effective set or an infinite limit (mmap of
 * a secretmem file then never fails with EAGAIN), so neither caps us then; the
 * reservation does. A fork copy maps a window of the child's new file in the
 * parent for a moment, which RLIMIT_MEMLOCK charges too: keep room for it. */
void budget_init(void)
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
size_t reserve_want(void)
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

/* ---- chunks ---- */


/* Whether every span of chunk c is free (no block, no slab). */
static bool chunk_empty(const struct chunk *c)
{
	for (uintptr_t a = c->start; a < c->start + c->len;) {
		const struct span *s = span_at(a);
		if (span_kind(s) != SPAN_FREE)
			return false;
		a = s->start + s->npages * PAGE;
	}
	return true;
}

/* Cuts the free span that holds page a (and the page before it) in two at a, so
 * that no span crosses the border of a chunk being unmapped. false if no
 * descriptor could be had. */
static bool cut_at(uintptr_t a)
{
	struct span *s = span_at(a);
	if (s->start == a)
		return true;
	bin_remove(s);
	struct span *t = split_tail(s, (a - s->start) >> PAGE_SHIFT);
	bin_insert(s);
	if (!t)
		return false;
	t->touched = s->touched;
	bin_insert(t);
	return true;
}

/* Merges the free span at a with its free neighbours again (after a cut_at of an
 * unmap that did not happen). */
static void uncut_at(uintptr_t a)
{
	struct span *s = span_at(a);
	if (s->kind != SPAN_FREE)
		return;
	bin_remove(s);
	span_free(s, s->touched);
}

/* Unmaps empty chunk c (after prev, or the first): the kernel frees its pages and
 * its memlock charge once the mapping is gone (its fd was closed when it was
 * mapped). Free runs may extend into the chunks next to it (chunks placed side by
 * side merge their free runs): they are cut at its borders first. The page map
 * names the range gone, so that a stale pointer into it is still a freed block.
 * false if the reservation could not be put back. */
static bool chunk_unmap(struct chunk *c, struct chunk *prev)
{
	uintptr_t end = c->start + c->len;
	bool right = c->next && c->next->start == end; /* else page end is a guard */
	if (!cut_at(c->start) || (right && !cut_at(end)) ||
	    sm_pages_unmap_to_reserved((void *)c->start, c->len) != 0) {
		uncut_at(c->start);
		if (right)
			uncut_at(end);
		return false;
	}
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
unsigned release_empty(void)
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

/* The lowest gap of the reservation that holds len bytes, above the parent's
 * chunks a fork dropped; *prev: the chunk before it. 0 if none. A new chunk goes
 * right after the chunk before it, and right before the one after it if it fills
 * the gap, else an unmapped guard page is left (page 0 is one): chunks side by
 * side make one range whose free runs merge, so that a block can span chunks
 * (bench/limit_bench: a block that could not, and a guard page between every two
 * chunks, kept the usable part of the limit at 87% at 8 MiB). */
static uintptr_t place(size_t len, struct chunk **prev)
{
	uintptr_t a = sm_arena_base + PAGE, end = sm_arena_base + sm_arena_reserved;
	if (a < drop_top)
		a = drop_top;
	*prev = NULL;
	for (struct chunk *c = chunks; c; c = c->next) {
		if (a + len + PAGE <= c->start || a + len == c->start)
			break;
		if (c->start + c->len > a)
			a = c->start + c->len;
		*prev = c;
	}
	return a + len + PAGE <= end && a + len > a ? a : 0;
}

/* How big a new chunk for need bytes is: doubling from 256 KiB to 8 MiB while the
 * budget is far off, but never more than half of what is left, nor less than
 * needed (each chunk is charged its whole size against the limit, used or not:
 * bench/limit_bench measured a quarter, a half and no bound; a half left the most
 * usable after rounds of random frees, and still does with chunks side by side). 0 if need
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
int grow(size_t n, size_t align)
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
		c = sm_meta_alloc(sizeof(*c));
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
	/* The guard pages may have been part of a chunk unmapped earlier; a chunk
	 * right next to this one has none there. */
	if (!prev || prev->start + prev->len != at)
		__atomic_store_n(page_slot(at - PAGE), NULL, __ATOMIC_RELAXED);
	if (!c->next || c->next->start != at + len)
		__atomic_store_n(page_slot(at + len), NULL, __ATOMIC_RELAXED);
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

/* ---- short of memory ---- */

/* What the last failed pages_alloc of this thread was short of, for the warning
 * once reclaim could not help either. */
static __thread struct {
	int err;
	size_t want;
} oom TLS_IE;

void oom_note(size_t want, int err)
{
	oom.err = err;
	oom.want = want;
}

void oom_warn(void)
{
	if (!oom.err)
		return;
	lock(&page_lock);
	warn_oom(oom.want, oom.err);
	unlock(&page_lock);
	oom.err = 0;
}

/* This thread's caches back: its slots to the slabs, its freed medium blocks to
 * the page allocator. */
static void flush_own_cache(void)
{
	publish_live();
	span_cache_flush();
	for (unsigned c = 0; c < NCLASS; c++)
		if (tc.bin[c].count)
			central_put(c, tc.bin[c].count);
}

/* Gives back the free blocks and slabs that keep pages from other uses: this
 * thread's cache, and of each class the current slab if nothing of it is out and
 * the empty slab kept back. Called with no lock held; takes each class lock, and
 * the page lock inside it. Returns whether anything went back. */
bool reclaim(void)
{
	bool any = false;
	for (unsigned c = 0; c < NCLASS && !any; c++)
		any = tc.bin[c].count != 0;
	for (size_t n = 1; n <= MEDIUM_PAGES && !any; n++)
		any = tc.spans[n].count != 0;
	flush_own_cache();
	for (unsigned c = 0; c < NCLASS; c++) {
		struct central *ce = &central[c];
		lock(&ce->lock);
		struct span *s = ce->cur;
		if (s && !s->used) { /* all its carved slots are back, on its free list */
			ce->cur = NULL;
			slab_release(ce, s);
			any = true;
		}
		if ((s = ce->spare)) {
			ce->spare = NULL;
			lock(&page_lock);
			span_free(s, true);
			unlock(&page_lock);
			any = true;
		}
		unlock(&ce->lock);
	}
	return any;
}

/* ---- idle release ---- */

/* Memory given back at idle is kept at the next idle moments for this long: a
 * program that frees its last secret and allocates again at once would otherwise
 * pay a chunk map and a first touch (~20 us a page) each time (bench/limit_bench:
 * 0.1-0.5 ms a cycle). Rapid cycles pay that at most once per hold. */
#define IDLE_HOLD_NS ((uint64_t)50 * 1000 * 1000)

static uint64_t released_at; /* now_ns() of the last idle release; 0: none */
/* When this thread last gave its cache back at an idle moment while others'
 * blocks were live, or found nothing live while memory was held; how many idle
 * moments it may pass without a look, from when. */
static __thread uint64_t flushed_at TLS_IE;
static __thread struct {
	uint32_t left;
	uint64_t from;
} skip TLS_IE;

/* The coarse clock (the kernel's tick, 4 ms here): the hold needs no finer, and
 * it is read at idle moments, which a program that frees each block at once
 * reaches at every free: 7 ns a read on this VM against CLOCK_MONOTONIC's 31
 * (bench/case_bench small-pair: 28 ns a pair before the hold, 47 with the fine
 * clock). */
static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* This thread has freed at least as many blocks as it allocated. If no secret
 * block is live anywhere (check every thread), give every chunk back, so no secret
 * mapping is left (while one exists the kernel refuses to hibernate the machine):
 * empty this thread's cache and the slabs kept back, and unmap every chunk that
 * holds nothing. Unless memory was given back so less than IDLE_HOLD_NS ago: then
 * keep it until an idle moment after that. If blocks of other threads are live,
 * give this thread's cached slots back to their slabs (unless it did so less than
 * IDLE_HOLD_NS ago), so that they do not keep chunks mapped when the others free
 * theirs. The next secret allocation maps a chunk again and faults its pages in
 * anew. Only chunks whose every span is free are unmapped, under page_lock, so a
 * race with another thread costs nothing worse than a chunk kept.
 *
 * A program that frees each secret at once reaches an idle moment at every free,
 * so the common outcomes cost little. First the clock (~7 ns on this VM): while
 * memory given back is held and this thread gave its cache back (or had nothing
 * to give, nothing being live) less than IDLE_HOLD_NS ago, no look can change
 * anything, and it takes no lock and reads no other thread's line. Else it sums
 * the counters; the only thread with a cache with no lock or walk (the lock was
 * half the cost of its pair). A look that finds N blocks live elsewhere is not
 * repeated for this thread's next N - 1 idle moments, SKIP_BUSY at most, within
 * SKIP_NS (skip): each takes the registry lock and reads lines that every other
 * thread writes at each of its calls (2 threads freeing at once ran at a quarter
 * of one thread's rate). A thread that alone frees those N cannot skip its last
 * free, nor one that comes SKIP_NS after the look (on the coarse clock: give or
 * take a tick); when several threads free their last blocks within that of each
 * other, the chunks may stay mapped until a later idle moment of one of them.
 * errno is kept only where it can change.
 *
 * An idle moment is a free after which the thread has freed at least as many
 * blocks as it allocated: a thread that frees what another allocated (a consumer)
 * never has freed exactly as many, and before this looked never. */
#define SKIP_BUSY 31
#define SKIP_NS ((uint64_t)10 * 1000 * 1000)

/* Every thread's allocations and frees (the lone thread's own without a lock). */
static void live_counts(uint64_t *a, uint64_t *f)
{
	if (__atomic_load_n(&reg_head, __ATOMIC_ACQUIRE) == &tc && !LOAD(tc.next)) {
		/* A thread that registers or exits meanwhile is a race the locked
		 * sum has too, and as harmless. */
		*a = LOAD(g_retired_allocs) + tc.nalloc;
		*f = LOAD(g_retired_frees) + tc.nfree;
		return;
	}
	lock(&reg_lock);
	*a = g_retired_allocs;
	*f = g_retired_frees;
	for (struct tcache *t = reg_head; t; t = t->next) {
		*a += LOAD(t->nalloc);
		*f += LOAD(t->nfree);
	}
	unlock(&reg_lock);
}

/* Nothing is live: give every chunk that holds nothing back. */
static void release_now(uint64_t now)
{
	int saved = errno;
	STORE(released_at, now);
	streams_give_back();
	reclaim();
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

__attribute__((noinline)) void release_idle(void)
{
	uint64_t now = now_ns(), last = LOAD(released_at);
	if (skip.left) {
		if (now - skip.from < SKIP_NS) {
			skip.left--;
			return;
		}
		skip.left = 0;
	}
	bool held = last && now - last < IDLE_HOLD_NS;
	if (held && now - flushed_at < IDLE_HOLD_NS)
		return;
	uint64_t a, f;
	live_counts(&a, &f);
	if (!ready)
		return;
	if (a != f) {
		/* At most once per hold too: a thread that allocates and frees one
		 * block at a time would refill its cache each time (1.6 us a cycle
		 * against 0.03). */
		if (now - flushed_at >= IDLE_HOLD_NS) {
			int saved = errno;
			flushed_at = now;
			flush_own_cache();
			errno = saved;
		}
		uint64_t live = a - f; /* blocks (a > f: frees lag allocations) */
		skip.left = live - 1 < SKIP_BUSY ? (uint32_t)(live - 1) : SKIP_BUSY;
		skip.from = now;
		return;
	}
	if (held) {
		flushed_at = now; /* nothing live: the release will take the cache */
		return;
	}
	release_now(now);
}

/* The fork child: its one thread's skip was decided against the other threads'
 * counters, which the child does not have; its release is exact from its first
 * idle moment (a SECRETMEM_FORK=drop child's block freed at once stayed mapped). */
void release_fork_child(void)
{
	skip.left = 0;
}

/* A thread exits (tc_exit has given its cache back): its cached slots may be what
 * kept a chunk mapped when the others freed their last block (a thread that
 * allocated blocks another freed never looks itself). If nothing is live, give it
 * back now, hold or not: an exit is no rapid cycle. */
void release_at_exit(void)
{
	uint64_t a, f;
	live_counts(&a, &f);
	if (ready && a == f && LOAD(g_chunks))
		release_now(now_ns());
}

/* ---- the backend ---- */

const char *errname(int err)
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
void probe_backend(void)
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

