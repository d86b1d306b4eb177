/* SPDX-License-Identifier: MIT */
/*
 * The arena across fork(): every arena lock is held over the fork; the child gets
 * its own copy of the parent's live secret pages (SECRETMEM_FORK=copy: one new
 * secret file, filled in the parent before the fork) or none (drop, or a
 * copy that failed: the parent's chunks become reserved holes, so a stale pointer
 * faults and free() knows it). With the mlock fallback copy-on-write gives the
 * child its pages and they are locked again. Never calls malloc.
 */
#include "config.h"
#include "arena-internal.h"
#include "options.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int fork_copy_err;
static int copy_fd = -1;          /* the child's copy, in flight */
static struct sfile *copy_file;   /* its record */
struct sfile *copy_spare;         /* the next copy's record, made by grow: the fork
				   * handlers cannot allocate (the routing module's
				   * prepare may hold the metadata lock already) */


/* Makes one new file holding every chunk's live pages, each chunk at its own
 * offset: in-use slabs up to their bump point and large blocks, only where
 * resident. Free runs are zero, and so is the new file. One file, not one a chunk:
 * compaction makes chunks of its pieces, hundreds of them after a long run, and
 * every file stays open until the child has mapped it (EMFILE at 1024 open files).
 * All locks are held. */
static int copy_chunks(void)
{
	size_t total = 0;
	for (struct chunk *c = chunks; c; c = c->next) {
		c->copy_off = total;
		total += c->len;
	}
	if (!total)
		return 0;
	if (!(copy_file = copy_spare))
		return -ENOMEM;
	copy_spare = NULL;
	*copy_file = (struct sfile){ .len = total };
	int fd = sm_pages_new_file(backend, total);
	if (fd < 0)
		return fd;
	copy_fd = fd;
	for (struct chunk *c = chunks; c; c = c->next) {
		uintptr_t end = c->start + c->len;
		for (uintptr_t a = c->start; a < end;) {
			struct span *s = span_at(a);
			uintptr_t hi = s->start;
			unsigned kind = span_kind(s);
			if (kind == SPAN_SLAB)
				hi = s->start + round_up(s->bump_end - s->start, PAGE);
			else if (kind == SPAN_LARGE || kind == SPAN_CACHED)
				/* CACHED too: its thread may take it and write to it
				 * before fork() returns, with no lock. */
				hi = s->start + s->npages * PAGE;
			/* A span may begin in the chunk before and end in the next (chunks
			 * side by side): this chunk's part of the file holds its part. */
			uintptr_t lo = s->start < c->start ? c->start : s->start;
			if (hi > end)
				hi = end;
			if (hi > lo) {
				int err = sm_pages_copy_in(fd, c->copy_off + (lo - c->start), (void *)lo,
							   hi - lo);
				if (err) {
					sm_pages_copy_end();
					return err;
				}
			}
			a = s->start + s->npages * PAGE;
		}
	}
	sm_pages_copy_end();
	return 0;
}

/* The copy's file is closed (the child's mappings keep it) and, where no child
 * took it (the parent, a copy that failed), its record is the spare again. */
static void close_copies(void)
{
	if (copy_fd >= 0)
		close(copy_fd);
	copy_fd = -1;
	if (copy_file)
		copy_spare = copy_file;
	copy_file = NULL;
}

static void prepare_copy(void);

void sm_arena_fork_prepare(void)
{
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
		return;
	lock(&reg_lock);
	for (unsigned c = 0; c < NCLASS; c++)
		lock(&central[c].lock);
	lock(&page_lock);
	prepare_copy();
}

/* _Fork (atfork.c), perhaps in a signal handler that interrupted a holder: takes
 * every lock the prepare handler takes, or none and says so. */
bool sm_arena_fork_tryprepare(void)
{
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
		return true;
	if (pthread_mutex_trylock(&reg_lock) != 0)
		return false;
	unsigned c = 0;
	while (c < NCLASS && pthread_mutex_trylock(&central[c].lock) == 0)
		c++;
	if (c == NCLASS && pthread_mutex_trylock(&page_lock) == 0) {
		prepare_copy();
		return true;
	}
	while (c-- > 0)
		unlock(&central[c].lock);
	unlock(&reg_lock);
	return false;
}

/* The child of a _Fork whose locks were busy: its arena starts empty, as with
 * SECRETMEM_FORK=drop, and the parent's pages are never the child's to write. */
void sm_arena_fork_child_drop(void)
{
	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
		return;
	fork_copy_err = -EBUSY; /* drop_all closes a copy another fork left open */
	sm_arena_fork_child();
}

static void prepare_copy(void)
{
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
	for (struct chunk *c = chunks; c; c = c->next)
		sm_pages_unmap_to_reserved((void *)c->start, c->len);
	close_copies();
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
	memset(tc.spans, 0, sizeof(tc.spans));
	drop_top = sm_arena_base + sm_arena_span;
	next_chunk = CHUNK_FIRST;
	g_mapped = g_touched = g_chunks = 0;
	/* None of the parent's blocks is the child's: as if freed, so that its own
	 * last free finds nothing live (the counts are the statistics' too). */
	g_retired_allocs += tc.nalloc;
	g_retired_frees += tc.nfree;
	tc.nalloc = tc.nfree = 0;
	g_retired_frees = g_retired_allocs;
	g_live = g_peak = 0;
	tc.delta = 0;
}

/* Only the forking thread lives on in the child, and the other threads' caches of
 * freed large blocks would be lost to it: every cached span goes back to the free
 * bins (the forking thread's too, simpler than telling them apart), wiped once
 * more, for a block another thread was wiping while fork_prepare copied its pages
 * reaches the child half wiped (copy_chunks runs beside the threads' lock-free
 * cache paths). The page map is as it was at the fork: kinds change under
 * page_lock or by an atomic store. */
static void reclaim_cached_spans(void)
{
	memset(tc.spans, 0, sizeof(tc.spans));
	lock(&page_lock);
	for (struct chunk *c = chunks; c; c = c->next)
		for (uintptr_t a = c->start, end = c->start + c->len; a < end;) {
			struct span *s = span_at(a);
			if (!s || s->start > a)
				break; /* a broken page map: sm_arena_check names it */
			if (span_kind(s) == SPAN_CACHED) {
				wipe_block((void *)s->start, s->npages * PAGE, s->touched);
				span_free(s, true);
				s = span_at(a); /* merged with its free neighbours */
			}
			a = s->start + s->npages * PAGE;
		}
	unlock(&page_lock);
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
	/* Only this thread lives on; the others' cached slots are lost to the child
	 * (bounded), their cached spans come back (reclaim_cached_spans). Their
	 * counts are retired, as at a thread's exit: their blocks are still the
	 * child's, and what it frees of them must meet what they allocated, or the
	 * child never finds nothing live (idle release). */
	for (struct tcache *t = reg_head; t; t = t->next)
		if (t != &tc) {
			g_retired_allocs += t->nalloc;
			g_retired_frees += t->nfree;
		}
	reg_head = NULL;
	release_fork_child();
	alias_fork_child();
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
		/* One file for every chunk now (release_empty unmaps them together),
		 * and the mapped total is its size. */
		uint32_t n = 0;
		for (struct chunk *c = chunks; c && !err; c = c->next, n++)
			err = sm_pages_map_fd((void *)c->start, c->len, copy_fd, c->copy_off);
		if (!err && copy_file) {
			files_fork_child(copy_file, n);
			g_mapped = copy_file->len;
			copy_file = NULL;
		}
		if (err) {
			sm_error("fork(): the child cannot map its copy of secret memory (%s); "
				 "it starts with none", errname(-err));
			drop_all();
		}
		close_copies();
	}
	if (chunks)
		reclaim_cached_spans();
	fork_copy_err = 0;
	errno = saved;
}

