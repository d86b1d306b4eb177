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
#include "sandbox.h"
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
	else if (err == -EPERM && LOAD(sm_sandbox_no_chunks))
		sm_warn("out of secret memory: %zu more bytes are needed, and the seccomp filter "
			"the program installed (a sandbox) would kill the process at %s, so no "
			"more secret memory is mapped; %zu bytes were mapped before it (allow "
			"memfd_secret, ftruncate, mmap, mprotect and close in the filter)",
			want, sm_sandbox_refused ? sm_sandbox_refused : "a call", (size_t)g_mapped);
	else if (err == -EPERM || err == -ENOSYS)
		/* memfd_secret or mmap refused after start-up: a seccomp filter the
		 * program installed (a sandbox), or a security module */
		sm_warn("out of secret memory: mapping %zu more bytes failed (%s): the kernel "
			"refused the call, most likely a seccomp filter the program installed "
			"after start-up (a sandbox) or a security module; allow memfd_secret, "
			"mmap and ftruncate there", want, errname(-err));
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
	/* Under a seccomp filter the last reading stands: getrlimit (prlimit64) and
	 * capget are in neither sshd's list nor systemd's @system-service. */
	static bool read_once;
	if (read_once && LOAD(sm_sandboxed))
		return;
	read_once = true;
	struct rlimit rl;
	bool enforced = getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
			!sm_pages_cap_ipc_lock();
	size_t kern = SIZE_MAX, room = 0;
	/* The fork copy's window: the largest when nothing limits memlock (a 16 MiB
	 * copy through 64 KiB windows was 256 mmap and munmap pairs, bench/fork_bench);
	 * under a limit 64 KiB, or a sixteenth of a small one: the window is charged
	 * to the limit, and the budget left for secrets matters more than a fork's
	 * mmap calls. */
	size_t window = sm_pages_copy_window(!enforced ? SM_PAGES_COPY_WINDOW_MAX
					     : rl.rlim_cur / 16 < 64 * 1024 ? (size_t)(rl.rlim_cur / 16)
					     : 64 * 1024);
	if (enforced) {
		/* And a page for compact's second mapping of a piece (copy's room
		 * does for both: they run under the same lock). */
		room = backend == SM_BACKEND_MLOCK ? 0 : sm_opt.fork == SM_FORK_COPY && window > PAGE ? window : PAGE;
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

/* The page map entries up to page end (a chunk's and its guard page's) must be
 * writable before they are set. 0 or -errno. */
static int pagemap_cover(uintptr_t end)
{
	size_t pm_end = round_up((page_index(end) + 1) * sizeof(*pagemap), PAGE);
	if (pm_end > pagemap_rw) {
		if (mprotect((char *)pagemap + pagemap_rw, pm_end - pagemap_rw,
			     PROT_READ | PROT_WRITE) != 0)
			return -errno;
		pagemap_rw = pm_end;
	}
	return 0;
}

static struct sfile *file_free;

/* A record for a new secret file of len bytes mapped by n chunks, or NULL. The
 * mapped total (g_mapped, what the budget counts) is the size of the files: a file
 * some of whose chunks are unmapped keeps all its pages (an unmap that failed for
 * another of them, release_empty), so it counts whole until its last chunk goes. */
struct sfile *file_new(uint32_t n, size_t len)
{
	struct sfile *f = file_free;
	if (f)
		file_free = f->next;
	else if (!(f = sm_meta_alloc(sizeof(*f))))
		return NULL;
	*f = (struct sfile){ .len = len, .chunks = n };
	return f;
}

/* One chunk less maps part of f; the last one gone, its pages are. */
void file_drop(struct sfile *f)
{
	if (--f->chunks == 0) {
		STORE(g_mapped, g_mapped - f->len);
		f->next = file_free;
		file_free = f;
	}
}

/* The fork child, whose chunks all map its one copy now (copy, n chunks): the
 * parent's records go back to the unused ones, and one of them is the next
 * copy's, taken with no allocation (a fork handler cannot allocate). */
void files_fork_child(struct sfile *copy, uint32_t n)
{
	for (struct chunk *c = chunks; c; c = c->next) {
		struct sfile *old = c->file;
		if (old && old != copy && old->chunks) {
			old->chunks = 0; /* seen: each goes back once */
			old->next = file_free;
			file_free = old;
		}
		c->file = copy;
	}
	copy->chunks = n;
	if (!copy_spare && file_free) {
		copy_spare = file_free;
		file_free = copy_spare->next;
	}
}

static struct chunk *chunk_get(void)
{
	struct chunk *c = chunk_free;
	if (c)
		chunk_free = c->next;
	else
		c = sm_meta_alloc(sizeof(*c));
	return c;
}

static void chunk_put(struct chunk *c)
{
	c->next = chunk_free;
	chunk_free = c;
}


/* Takes chunk c (after prev, or the first) out of the list: its file has one
 * chunk less, its descriptor is free. */
static void chunk_remove(struct chunk *c, struct chunk *prev)
{
	if (prev)
		prev->next = c->next;
	else
		chunks = c->next;
	file_drop(c->file);
	chunk_put(c);
	STORE(g_chunks, g_chunks - 1);
}

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
 * unmap or a move that did not happen). */
static void uncut_at(uintptr_t a)
{
	struct span *s = span_at(a);
	if (!s || span_kind(s) != SPAN_FREE) /* a guard page, a hole, a block */
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
	chunk_remove(c, prev);
	STORE(g_touched, g_touched - touched);
	return true;
}

/* Unmaps every chunk that holds nothing, unless another chunk that maps part of
 * its file holds something (compact): the kernel frees a secret file's pages only
 * when its last mapping is gone, so unmapping one part of it would drop their
 * memlock charge and keep the pages. Returns how many. */
unsigned release_empty(void)
{
	/* A sandbox that forbids mapping chunks: keep them all, none would come back. */
	if (LOAD(sm_sandbox_no_chunks))
		return 0;
	for (struct chunk *c = chunks; c; c = c->next)
		c->file->busy = false;
	for (struct chunk *c = chunks; c; c = c->next)
		if (!(c->empty = chunk_empty(c)))
			c->file->busy = true;
	unsigned n = 0;
	for (struct chunk *c = chunks, *prev = NULL, *next; c; c = next) {
		next = c->next;
		if (c->empty && !c->file->busy && !c->file->pinned && chunk_unmap(c, prev))
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
static void hold_on_regrow(void);

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
			if ((err = pagemap_cover(at + len)))
				return err;
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
	struct chunk *c = chunk_get();
	struct sfile *f = file_new(1, 0);
	if (!s || !c || !f) {
		if (s)
			desc_put(s);
		if (c)
			chunk_put(c);
		if (f)
			file_drop(f);
		sm_pages_unmap_to_reserved((void *)at, len);
		return -ENOMEM;
	}
	*c = (struct chunk){ .start = at, .len = len, .next = prev ? prev->next : chunks, .file = f };
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
	f->len = len;
	STORE(g_mapped, g_mapped + len);
	STORE(g_chunks, g_chunks + 1);
	if (!copy_spare) /* a fork copy's record, made where allocating is safe */
		copy_spare = file_new(0, 0);
	hold_on_regrow();
	return 0;
}

/* ---- compaction ---- */

/* At most this many pieces go into one run: each costs two system calls (about 14
 * us on this VM) and becomes a chunk of its own. Pieces never merge again (only a
 * release of their whole file ends them), so the chunks grow in number over a long
 * fragmenting run (bench/limit_bench, 100 rounds: about 1300 at 8 MiB, 2800 at
 * 64 MiB): each is a mapping or two (vm.max_map_count is 65530), and the fork copy
 * and release_empty walk them. Past COMPACT_CHUNKS, no compaction. 64 pieces left
 * a 2 MiB request unmet with a third of 64 MiB free in shorter runs. */
#define COMPACT_PIECES 256
#define COMPACT_CHUNKS 8192

/* The chunk that holds page a (one exists), and the one before it. */
static struct chunk *chunk_at(uintptr_t a, struct chunk **prev)
{
	*prev = NULL;
	struct chunk *c = chunks;
	while (a >= c->start + c->len) {
		*prev = c;
		c = c->next;
	}
	return c;
}

/* How many chunks [a, a + n pages) lies in. */
static size_t pieces_of(uintptr_t a, size_t n)
{
	struct chunk *prev, *c = chunk_at(a, &prev);
	size_t k = 1;
	for (uintptr_t end = a + n * PAGE; c->start + c->len < end; c = c->next)
		k++;
	return k;
}

/* Puts chunk c into the list, in address order. */
static void chunk_link(struct chunk *c)
{
	struct chunk **pp = &chunks;
	while (*pp && (*pp)->start < c->start)
		pp = &(*pp)->next;
	c->next = *pp;
	*pp = c;
	STORE(g_chunks, g_chunks + 1);
}

/* [lo, hi) of chunk c (after prev) is mapped elsewhere now and reserved here: c
 * keeps what is left on either side, split in two with *spare if need be. */
static void chunk_cut(struct chunk *c, struct chunk *prev, uintptr_t lo, uintptr_t hi,
		      struct chunk **spare)
{
	uintptr_t end = c->start + c->len;
	if (lo == c->start && hi == end) {
		chunk_remove(c, prev);
		return;
	}
	if (lo > c->start && hi < end) {
		struct chunk *r = *spare;
		*spare = r->next;
		*r = (struct chunk){ .start = hi, .len = end - hi, .next = c->next, .file = c->file };
		c->file->chunks++;
		c->next = r;
		c->len = lo - c->start;
		STORE(g_chunks, g_chunks + 1);
	} else if (lo == c->start) {
		c->start = hi;
		c->len = end - hi;
	} else {
		c->len = lo - c->start;
	}
}

/* Second mappings left by a move whose unmaps both failed (no map count left):
 * they map pages of the parent's files, which a fork child must not keep. The
 * child puts the reservation over each (alias_fork_child): replacing a whole
 * mapping needs no new map slot. Past the table's end, MADV_DONTFORK instead (the
 * child then has a hole there, rather than the parent's pages). */
#define ALIASES 32
static struct {
	uintptr_t addr;
	size_t len;
} alias[ALIASES];
static unsigned nalias;

static void alias_note(uintptr_t addr, size_t len)
{
	if (nalias < ALIASES) {
		alias[nalias].addr = addr;
		alias[nalias].len = len;
		nalias++;
	} else
		madvise((void *)addr, len, MADV_DONTFORK);
}

void alias_fork_child(void)
{
	for (unsigned i = 0; i < nalias; i++)
		if (sm_pages_unmap_to_reserved((void *)alias[i].addr, alias[i].len) != 0)
			munmap((void *)alias[i].addr, alias[i].len); /* never the parent's */
	nalias = 0;
}

/* Maps the secret pages at [src, src + len) at dst instead, where the reservation
 * is, and puts the reservation back at src. mremap with an old size of 0 maps the
 * same pages a second time (a shared mapping), and then the reservation replaces
 * the first mapping: no hole is ever open in the reservation, where another
 * thread's mmap could land (a move, which leaves one, would then have us map over
 * that thread's memory, or take its pointers for ours). The second mapping is
 * charged to RLIMIT_MEMLOCK until the first goes: steps are halved, down to a page,
 * while the kernel says EAGAIN (budget_init keeps a page of room for this). Returns
 * the bytes moved, from the start; *twice: a second mapping of pages not moved
 * may be left at dst (both unmaps failed: no map count left). */
static size_t move_pages(uintptr_t src, uintptr_t dst, size_t len, bool *twice)
{
	size_t done = 0, step = len;
	while (done < len) {
		if (step > len - done)
			step = len - done;
		void *r = mremap((void *)(src + done), 0, step, MREMAP_MAYMOVE | MREMAP_FIXED,
				 (void *)(dst + done));
		if (r == MAP_FAILED) {
			if (errno == EAGAIN && step > PAGE) {
				step = (step / 2) & ~(PAGE - 1);
				continue;
			}
			break;
		}
		if (sm_pages_unmap_to_reserved((void *)(src + done), step) != 0) {
			/* The first mapping stays; the second goes, or stays until a
			 * chunk placed in its gap (which has none) maps over it. */
			*twice = sm_pages_unmap_to_reserved((void *)(dst + done), step) != 0;
			if (*twice)
				alias_note(dst + done, step);
			break;
		}
		done += step;
	}
	return done;
}

/* No free run holds n pages at align, and the budget has no room for a chunk that
 * would (grow failed); but the free runs, with what budget is left, may. Maps
 * those pages side by side into a gap of the reservation (move_pages: they keep
 * their contents, zero, and their faults), largest runs first, what is left of
 * the budget as a new chunk in front, so that they make one free run of n pages.
 * The mapped total does not change; each piece becomes a chunk of its own, and
 * shares its file with what is left of the chunk it came from (release_empty).
 * 0, or -ENOMEM if they do not hold n pages (or the kernel stopped it half way:
 * what moved is a free run all the same). Not for the mlock fallback: its private
 * anonymous pages cannot be mapped twice. */
int compact(size_t n, size_t align)
{
	if (backend == SM_BACKEND_MLOCK || g_chunks >= COMPACT_CHUNKS)
		return -ENOMEM;
	/* A program that keeps asking at its limit gets here at every call: first
	 * whether the free pages are enough at all. */
	size_t total = budget_left() >> PAGE_SHIFT;
	for (unsigned b = 0; b < NBINS && total < n; b++)
		for (int t = 0; t < 2; t++)
			for (struct span *s = bins[t][b]; s && total < n; s = s->next)
				total += s->npages;
	if (total < n)
		return -ENOMEM;
	struct span *pick[COMPACT_PIECES];
	size_t npick = 0, got = 0, pieces = 0;
	for (unsigned b = NBINS; b-- > 0 && got < n;)
		for (int t = 1; t >= 0 && got < n; t--)
			for (struct span *s = bins[t][b]; s && got < n; s = s->next) {
				size_t take = s->npages < n - got ? s->npages : n - got;
				size_t k = pieces_of(s->start, take);
				if (pieces + k > COMPACT_PIECES)
					goto chosen;
				pick[npick++] = s;
				got += take;
				pieces += k;
			}
chosen:;
	size_t fresh = n - got;
	if (!npick || fresh * PAGE > budget_left())
		return -ENOMEM;
	struct chunk *prev;
	size_t pad = align > PAGE ? align - PAGE : 0;
	uintptr_t at = place(n * PAGE + pad, &prev);
	if (!at)
		return -ENOMEM;
	uintptr_t v = round_up(at, align), dst = v;
	int err = pagemap_cover(v + n * PAGE);
	if (err)
		return err;

	/* Every descriptor first: a chunk for each piece and for the fresh part, one
	 * for each chunk a piece splits, the run's span and the fresh part's file. */
	struct chunk *spare = NULL;
	struct span *run = desc_new();
	struct sfile *f = fresh ? file_new(1, 0) : NULL;
	size_t nspare = 0;
	for (; run && nspare < 2 * pieces + 1; nspare++) {
		struct chunk *c = chunk_get();
		if (!c)
			break;
		c->next = spare;
		spare = c;
	}
	if (!run || nspare < 2 * pieces + 1 || (fresh && !f)) {
		err = -ENOMEM;
		goto out;
	}
	if (fresh) {
		err = sm_pages_map_chunk(backend, (void *)v, fresh * PAGE, sm_opt.fork == SM_FORK_DROP);
		if (err)
			goto out;
		struct chunk *c = spare;
		spare = c->next;
		*c = (struct chunk){ .start = v, .len = fresh * PAGE, .file = f };
		f->len = fresh * PAGE;
		f = NULL;
		chunk_link(c);
		STORE(g_mapped, g_mapped + fresh * PAGE);
		dst += fresh * PAGE;
	}
	bool touched = false;
	size_t untouched = fresh;
	for (size_t i = 0; i < npick && !err; i++) {
		struct span *s = pick[i];
		size_t take = (v + n * PAGE - dst) >> PAGE_SHIFT;
		if (take < s->npages && !cut_at(s->start + take * PAGE)) {
			err = -ENOMEM;
			break;
		}
		if (take > s->npages)
			take = s->npages;
		uintptr_t hi = s->start + take * PAGE;
		/* Piece by piece: a run may lie in chunks side by side. */
		for (uintptr_t a = s->start; a < hi;) {
			struct chunk *cp, *c = chunk_at(a, &cp);
			uintptr_t end = c->start + c->len < hi ? c->start + c->len : hi;
			struct span *p = span_at(a);
			if (end < p->start + p->npages * PAGE && !cut_at(end)) {
				err = -ENOMEM;
				uncut_at(hi); /* what is left of the run is one again */
				break;
			}
			bin_remove(p);
			bool twice = false;
			size_t moved = move_pages(a, dst, end - a, &twice);
			if (twice)
				c->file->pinned = true; /* mapped at dst too */
			if (moved) {
				/* The piece's chunk first: chunk_cut may drop the
				 * last one it leaves. */
				struct sfile *file = c->file;
				file->chunks++;
				chunk_cut(c, cp, a, a + moved, &spare);
				struct chunk *d = spare;
				spare = d->next;
				*d = (struct chunk){ .start = dst, .len = moved, .file = file };
				chunk_link(d);
				set_pages(&gone, a, moved >> PAGE_SHIFT);
				if (p->touched)
					touched = true;
				else
					untouched += moved >> PAGE_SHIFT;
				dst += moved;
			}
			if (moved < end - a) {
				/* The rest stays where it is, one free run again with what
				 * follows it (cut at end and at hi). */
				p->start = a + moved;
				p->npages = (end - a - moved) >> PAGE_SHIFT;
				bin_insert(p);
				uncut_at(end);
				uncut_at(hi);
				err = -ENOMEM;
				break;
			}
			desc_put(p);
			a = end;
		}
	}
	if (dst > v) {
		/* One free run of zero pages, faulted in or not: touched if any was, so
		 * that a wipe skips none. Either side of it is a guard page unless a
		 * chunk lies right there. */
		run->start = v;
		run->npages = (dst - v) >> PAGE_SHIFT;
		set_pages(run, v, run->npages);
		struct chunk *l = NULL, *r = chunks;
		while (r && r->start + r->len <= v) {
			l = r;
			r = r->next;
		}
		if (!l || l->start + l->len != v)
			__atomic_store_n(page_slot(v - PAGE), NULL, __ATOMIC_RELAXED);
		while (r && r->start < dst)
			r = r->next;
		if (!r || r->start != dst)
			__atomic_store_n(page_slot(dst), NULL, __ATOMIC_RELAXED);
		if (dst + PAGE - sm_arena_base > sm_arena_span)
			STORE(sm_arena_span, dst + PAGE - sm_arena_base);
		if (touched)
			STORE(g_touched, g_touched + untouched * PAGE);
		span_free(run, touched);
		run = NULL;
	}
out:
	if (run)
		desc_put(run);
	if (f)
		file_drop(f);
	while (spare) {
		struct chunk *c = spare;
		spare = c->next;
		chunk_put(c);
	}
	return err;
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

/* Memory given back at idle is kept at the next idle moments for a while (the
 * hold, hold_ns): a program that frees its last secret and allocates again at
 * once would otherwise pay a chunk map and a first touch (~20 us a page) each time
 * (bench/limit_bench: 0.1-0.5 ms a cycle). Cycles faster than the hold pay that
 * once per hold: with a fixed 50 ms, a program that kept 1 MiB live between its
 * idle moments spent 14% of its time faulting it in again (bench/case_bench
 * realloc), and one with 16 MiB more than it ran. So the hold starts at
 * HOLD_FIRST_NS and doubles, up to HOLD_MAX_NS, each time memory given back is
 * needed again (a chunk mapped) within HOLD_MAX_NS of the release; needed again
 * later than that, or never, the release was worth it, and the hold is
 * HOLD_FIRST_NS again. A program busy with secrets then refaults them at most
 * once a second; one that uses them less often than that gives them back at each
 * idle moment. A thread gives its cache back at most once per FLUSH_HOLD_NS. */
#define HOLD_FIRST_NS ((uint64_t)50 * 1000 * 1000)
#define HOLD_MAX_NS ((uint64_t)1000 * 1000 * 1000)
#define FLUSH_HOLD_NS ((uint64_t)50 * 1000 * 1000)

static uint64_t released_at; /* now_ns() of the last idle release; 0: none */
static uint64_t hold_ns = HOLD_FIRST_NS;
/* Every chunk was given back at the last release: the next chunk mapped tells
 * whether that was worth it (page_lock). */
static bool regrow_watch;
/* When this thread last gave its cache back at an idle moment while others'
 * blocks were live, or found nothing live while memory was held; how many idle
 * moments it may pass without a look, from when. */
static __thread uint64_t flushed_at TLS_IE;
static __thread struct {
	uint32_t left;
	uint64_t from;
} skip TLS_IE;
/* Until when (now_ns) this thread's idle moments can change nothing: memory given
 * back is held and this thread gave its cache back (or found nothing live) within
 * the hold, so the look below would return at once. The first test of every idle
 * moment, before any other state is read: a thread that frees each block at once
 * pays the clock and one compare (bench/case_bench small-pair). released_at only
 * grows, so a later release by another thread only makes it later in truth. */
static __thread uint64_t quiet_until TLS_IE;

/* The coarse clock (the kernel's tick, 4 ms here): the hold needs no finer, and
 * it is read at idle moments, which a program that frees each block at once
 * reaches at every free: 7 ns a read on this VM against CLOCK_MONOTONIC's 31
 * (bench/case_bench small-pair: 28 ns a pair before the hold, 47 with the fine
 * clock). */
static uint64_t now_ns(void)
{
	/* In TLS, not on the stack: a local whose address is taken would give the
	 * idle check a stack-protector canary to set and test at every call. */
	static __thread struct timespec ts TLS_IE;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* This thread has freed at least as many blocks as it allocated. If no secret
 * block is live anywhere (check every thread), give every chunk back, so no secret
 * mapping is left (while one exists the kernel refuses to hibernate the machine):
 * empty this thread's cache and the slabs kept back, and unmap every chunk that
 * holds nothing. Unless memory was given back less than the hold ago: then keep
 * it until an idle moment after that. If blocks of other threads are live, give
 * this thread's cached slots back to their slabs (unless it did so less than
 * FLUSH_HOLD_NS ago), so that they do not keep chunks mapped when the others free
 * theirs. The next secret allocation maps a chunk again and faults its pages in
 * anew. Only chunks whose every span is free are unmapped, under page_lock, so a
 * race with another thread costs nothing worse than a chunk kept.
 *
 * A program that frees each secret at once reaches an idle moment at every free,
 * so the common outcomes cost little. First the clock (~6 ns on this VM) and one
 * compare (quiet_until): while memory given back is held and this thread gave its
 * cache back (or had nothing to give, nothing being live) less than FLUSH_HOLD_NS
 * ago, no look can change anything, and it takes no lock and reads no other
 * thread's line (small-pair: 22 ns a pair against 25 with the whole look inline,
 * 209 instructions against 242 under callgrind). While that holds, most idle
 * moments skip the clock too (unread, below). Else it sums
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
	regrow_watch = !kept;
	unlock(&page_lock);
	/* Chunks kept (blocks cached by other threads, a stream in use): the streams
	 * go on holding secret buffers there, else at the next secret allocation. */
	STORE(streams_want, true);
	if (kept)
		streams_hold();
	errno = saved;
}

static __attribute__((noinline)) void release_idle_look(uint64_t now)
{
	uint64_t last = LOAD(released_at);
	if (skip.left) {
		if (now - skip.from < SKIP_NS) {
			skip.left--;
			return;
		}
		skip.left = 0;
	}
	uint64_t hold = LOAD(hold_ns);
	bool held = last && now - last < hold;
	if (held && now - flushed_at < FLUSH_HOLD_NS) {
		quiet_until = last + hold < flushed_at + FLUSH_HOLD_NS ? last + hold
									: flushed_at + FLUSH_HOLD_NS;
		return;
	}
	uint64_t a, f;
	live_counts(&a, &f);
	if (!ready)
		return;
	if (a != f) {
		/* At most once per hold too: a thread that allocates and frees one
		 * block at a time would refill its cache each time (1.6 us a cycle
		 * against 0.03). */
		if (now - flushed_at >= FLUSH_HOLD_NS) {
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
		quiet_until = last + hold < now + FLUSH_HOLD_NS ? last + hold : now + FLUSH_HOLD_NS;
		return;
	}
	release_now(now);
}

/* A seccomp filter about to be installed would refuse the calls that map a chunk
 * (sandbox.c): map one of SANDBOX_RESERVE bytes now, unless that much is free
 * already, so that the sandboxed code has secret memory. Only in a process that
 * has used the arena or has rules (annotations alone that never ran keep nothing
 * locked). Best effort: what the budget does not allow, it does not map. */
#define SANDBOX_RESERVE ((size_t)4 << 20)
void sm_arena_sandbox_reserve(void)
{
	if (sm_opt.mode == SM_MODE_OFF)
		return;
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
		if (!sm_options_have_rules(&sm_opt))
			return;
		sm_arena_init();
		if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
			return;
	}
	lock(&page_lock);
	int64_t live = LOAD(g_live);
	size_t mapped = LOAD(g_mapped), used = live > 0 ? (size_t)live : 0;
	size_t free_bytes = mapped > used ? mapped - used : 0;
	int err = free_bytes < SANDBOX_RESERVE ? grow(SANDBOX_RESERVE >> PAGE_SHIFT, PAGE) : 0;
	unlock(&page_lock);
	if (err)
		sm_info("a seccomp filter comes: %zu bytes more of secret memory could not be "
			"mapped before it (%s)", SANDBOX_RESERVE, errname(-err));
}

/* A chunk was mapped (page_lock held): if it is the first since a release gave
 * every chunk back, the hold doubles or starts again (HOLD_FIRST_NS). */
static void hold_on_regrow(void)
{
	if (likely(!regrow_watch))
		return;
	regrow_watch = false;
	uint64_t gap = now_ns() - LOAD(released_at), hold = LOAD(hold_ns);
	STORE(hold_ns, gap >= HOLD_MAX_NS  ? HOLD_FIRST_NS
		       : 2 * hold < HOLD_MAX_NS ? 2 * hold
						: HOLD_MAX_NS);
}

/* While quiet, idle moments that pass without even the clock. A read that finds
 * the clock where the last one left it (the coarse clock's tick, 4 ms here: idle
 * moments come faster than it moves) makes the next gap twice as long plus one,
 * up to QUIET_UNREAD; one that finds it moved halves the gap. The look is then
 * late by at most QUIET_UNREAD idle moments after quiet_until, and a window
 * starts again from reading at every idle moment. Those are the moments of a
 * thread that frees each block at once: 1 in 16 pays the clock
 * (bench/case_bench small-pair). */
#define QUIET_UNREAD 15
static __thread struct {
	/* the moments still to pass unread are tc.unread (slot_push reads it) */
	uint32_t gap;  /* the last gap set */
	uint64_t at;   /* the clock at the last read */
} unread TLS_IE;

__attribute__((noinline)) void release_idle(void)
{
	if (likely(tc.unread)) {
		tc.unread--;
		return;
	}
	uint64_t now = now_ns();
	if (likely(now < quiet_until)) {
		uint32_t g = unread.gap;
		g = now != unread.at ? g / 2 : g < QUIET_UNREAD / 2 ? 2 * g + 1 : QUIET_UNREAD;
		unread.gap = tc.unread = g;
		unread.at = now;
		return;
	}
	unread.gap = 0;
	release_idle_look(now);
}

/* The fork child: its one thread's skip was decided against the other threads'
 * counters, which the child does not have; its release is exact from its first
 * idle moment (a SECRETMEM_FORK=drop child's block freed at once stayed mapped),
 * and so is its quiet: it was the parent's. */
void release_fork_child(void)
{
	skip.left = 0;
	tc.unread = 0;
	unread.gap = 0;
	quiet_until = 0;
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

