/* SPDX-License-Identifier: MIT */
/*
 * The interposed allocation API: malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size,
 * free_sized and free_aligned_sized, C++'s operator new and delete, strdup and
 * strndup, plus the secretmem.h entry points.
 *
 * Each call either goes to the secret arena (arena.c) or to the next allocator in
 * the chain (glibc, or a jemalloc preloaded after us), found with dlsym(RTLD_NEXT).
 * free() decides by address alone: one range check.
 *
 * Start-up: programs allocate before any constructor runs, so the first call
 * initialises (options, next allocator, arena probe, routing rules). The
 * allocations dlsym makes while we look the next allocator up are served from a
 * static buffer and recognised on free. A thread-local guard keeps the shim from
 * re-entering itself: whatever the routing code's helpers (libunwind, the loader)
 * allocate goes straight to the next allocator.
 *
 * With no rule (or SECRETMEM_MODE=off) the fast path is one load and compare in
 * front of the next allocator's function; nothing here may slow that down.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <malloc.h>

#include "arena.h"
#include "log.h"
#include "meta.h"
#include "options.h"
#include "route.h"
#include "stats.h"

#define SM_EXPORT __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#ifndef HAVE_FREE_SIZED
void free_sized(void *p, size_t size);
#endif
#ifndef HAVE_FREE_ALIGNED_SIZED
void free_aligned_sized(void *p, size_t align, size_t size);
#endif
#ifndef HAVE_PVALLOC
void *pvalloc(size_t size);
#endif

/* The public entry points of secretmem.h (the header reaches them weakly). */
SM_EXPORT void secretmem_impl_scope_begin(void);
SM_EXPORT void secretmem_impl_scope_end(void);
SM_EXPORT int secretmem_impl_is_secret(const void *p);
SM_EXPORT int secretmem_impl_active(void);
SM_EXPORT void secretmem_impl_annotated(void);

enum state { ST_UNINIT, ST_INIT, ST_PASS, ST_ROUTE };

/* Read on every call: ST_PASS is the fast path. */
static int state = ST_UNINIT;

static inline bool pass(void)
{
	return __atomic_load_n(&state, __ATOMIC_RELAXED) == ST_PASS;
}

/* free() and realloc() look closer only at pointers in [special_lo, +special_span):
 * everything until start-up is done, then the arena's range (see
 * set_special_ranges). One subtraction and compare. */
static uintptr_t special_lo;
static uintptr_t special_span = UINTPTR_MAX;

static inline bool special(const void *p)
{
	return (uintptr_t)p - __atomic_load_n(&special_lo, __ATOMIC_RELAXED) <
	       __atomic_load_n(&special_span, __ATOMIC_RELAXED);
}

static struct {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*reallocarray)(void *, size_t, size_t);
	int (*posix_memalign)(void **, size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	void *(*memalign)(size_t, size_t);
	void *(*valloc)(size_t);
	void *(*pvalloc)(size_t);
	size_t (*malloc_usable_size)(void *);
	void (*free_sized)(void *, size_t);
	void (*free_aligned_sized)(void *, size_t, size_t);
} next;

static bool next_ready; /* every field of next is set */

#define in_shim sm_thread.in_shim
static pthread_t init_thread;
static size_t page_size = 4096;

/* ---- bootstrap buffer: what dlsym allocates while we look the allocator up ---- */

#define BOOT_SIZE (64 * 1024)
static char boot_buf[BOOT_SIZE] __attribute__((aligned(64)));
static size_t boot_used;

struct boot_hdr { size_t size; size_t pad; };

static bool is_boot(const void *p)
{
	return (uintptr_t)p - (uintptr_t)boot_buf < BOOT_SIZE;
}

static void *boot_alloc(size_t align, size_t size)
{
	if (align < 16)
		align = 16;
	uintptr_t base = (uintptr_t)boot_buf;
	uintptr_t p = (base + boot_used + sizeof(struct boot_hdr) + align - 1) & ~(align - 1);
	if (size > BOOT_SIZE || p + size > base + BOOT_SIZE) {
		errno = ENOMEM;
		return NULL;
	}
	((struct boot_hdr *)p)[-1].size = size;
	boot_used = p + size - base;
	return (void *)p; /* static storage: already zero */
}

static size_t boot_size(const void *p)
{
	return ((const struct boot_hdr *)p)[-1].size;
}

/* ---- start-up ---- */

static void *need(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (!f)
		sm_die("cannot find the next allocator's %s (is the shim first in LD_PRELOAD?)", name);
	return f;
}

/* An optional function counts only if it comes from the same object as the next
 * malloc: jemalloc without pvalloc must not send us to glibc's pvalloc. */
static void *same_object(const char *name, unsigned long anchor_obj)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (!f || sm_object_base(f) != anchor_obj)
		return NULL;
	return f;
}

static void resolve_next(void)
{
	next.malloc = need("malloc");
	next.free = need("free");
	next.calloc = need("calloc");
	next.realloc = need("realloc");
	unsigned long obj = sm_object_base((void *)next.malloc);
	next.reallocarray = same_object("reallocarray", obj);
	next.posix_memalign = same_object("posix_memalign", obj);
	next.aligned_alloc = same_object("aligned_alloc", obj);
	next.memalign = same_object("memalign", obj);
	next.valloc = same_object("valloc", obj);
	next.pvalloc = same_object("pvalloc", obj);
	next.malloc_usable_size = same_object("malloc_usable_size", obj);
	next.free_sized = same_object("free_sized", obj);
	next.free_aligned_sized = same_object("free_aligned_sized", obj);
	if (!next.posix_memalign)
		sm_die("the next allocator has no posix_memalign");
	if (!next.malloc_usable_size)
		sm_die("the next allocator has no malloc_usable_size");
	/* Other threads wait for this in starting(). */
	__atomic_store_n(&next_ready, true, __ATOMIC_RELEASE);
}

static void set_special(uintptr_t lo, uintptr_t hi)
{
	/* Widen first, then move: a concurrent free() may see a range too wide (and
	 * take the slow path), never one that misses a special pointer. */
	__atomic_store_n(&special_span, UINTPTR_MAX, __ATOMIC_RELEASE);
	__atomic_store_n(&special_lo, lo, __ATOMIC_RELEASE);
	__atomic_store_n(&special_span, hi - lo, __ATOMIC_RELEASE);
}

/* The pointers free() must look at: the arena, and the bootstrap buffer if dlsym
 * ever used it (glibc's does not, so usually the arena alone). A range covering
 * both would also cover whatever lies between them, glibc's thread heaps
 * included, and send their frees down the slow path. Called once start-up is
 * over, when no bootstrap allocation can happen any more. */
static void set_special_ranges(void)
{
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	if (boot_used) {
		lo = (uintptr_t)boot_buf;
		hi = lo + BOOT_SIZE;
	}
	if (sm_arena_span) {
		if (sm_arena_base < lo)
			lo = sm_arena_base;
		if (sm_arena_base + sm_arena_span > hi)
			hi = sm_arena_base + sm_arena_span;
	}
	if (lo > hi)
		lo = hi = 0; /* nothing special: an empty range */
	set_special(lo, hi);
}

/* The program's malloc must be ours, or no rule can route anything: another
 * allocator preloaded before the shim serves it then. Asked by calling
 * malloc_usable_size(NULL) through the PLT, as the program's calls resolve (its
 * address from dlsym may be a PLT stub of the program's); every allocator that
 * replaces malloc replaces that too. */
static __thread bool probe, probe_reached __attribute__((tls_model("initial-exec")));

static void check_first(void)
{
	probe = true;
	probe_reached = false;
	(void)malloc_usable_size(NULL);
	probe = false;
	if (probe_reached)
		return;
	Dl_info di;
	void *first = dlsym(RTLD_DEFAULT, "malloc_usable_size");
	const char *who = first && dladdr(first, &di) && di.dli_fname && di.dli_fname[0]
				  ? di.dli_fname : "another allocator";
	sm_die("malloc is served by %s, not the shim: nothing could be made secret; put "
	       "libsecretmem-preload.so first in LD_PRELOAD", who);
}

static void routing_on(void)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	/* Outside the lock: dlopen takes the loader's, which a thread running an
	 * annotated library's constructor holds when it gets here. */
	in_shim++;
	check_first();
	sm_route_load_unwinder();
	in_shim--;
	pthread_mutex_lock(&lock);
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != ST_ROUTE) {
		sm_arena_init();
		set_special_ranges();
		__atomic_store_n(&state, ST_ROUTE, __ATOMIC_RELEASE);
		sm_stats_refresh();
	}
	pthread_mutex_unlock(&lock);
}

static void init(void)
{
	int expected = ST_UNINIT;
	if (!__atomic_compare_exchange_n(&state, &expected, ST_INIT, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		/* Another thread initialises: wait for it (our own nested calls never get
		 * here, they are served from the bootstrap buffer). */
		while (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == ST_INIT)
			sched_yield();
		return;
	}
	init_thread = pthread_self();
	in_shim = 1;
	long ps = sysconf(_SC_PAGESIZE);
	if (ps > 0)
		page_size = (size_t)ps;
	sm_options_read();
	sm_stats_init();
	resolve_next();
	bool route = sm_opt.mode != SM_MODE_OFF && sm_route_init();
	if (sm_opt.mode != SM_MODE_OFF &&
	    pthread_atfork(sm_route_fork_prepare, sm_route_fork_parent, sm_route_fork_child))
		sm_die("pthread_atfork failed: cannot keep the routing tables safe across fork()");
	in_shim = 0;
	if (route) {
		routing_on();
	} else {
		set_special_ranges();
		__atomic_store_n(&state, ST_PASS, __ATOMIC_RELEASE);
	}
}

/* Run before main even if the program never allocates, so that a bad variable
 * stops every program before it starts. */
__attribute__((constructor)) static void sm_ctor(void)
{
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == ST_UNINIT)
		init();
}

/* During our own start-up (same thread) the bootstrap buffer serves; otherwise the
 * state is settled when this returns. */
static bool starting(void)
{
	int s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
	if (s == ST_UNINIT) {
		init();
		s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
	}
	if (s != ST_INIT)
		return false;
	if (in_shim || pthread_equal(init_thread, pthread_self()))
		return true;
	/* Another thread is initialising: wait until it knows the next allocator. */
	while (!__atomic_load_n(&next_ready, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&state, __ATOMIC_ACQUIRE) == ST_INIT)
		sched_yield();
	return false;
}

/* The routed fast path: while rules are active, the cached class of the caller
 * settles most calls with one TLS test and one cache probe. -1: ask secret(). */
static inline int routed_in(int st, void *ra)
{
	if (st != ST_ROUTE)
		return -1;
	if (unlikely(sm_thread.any)) /* in a scope: secret; inside the shim: ask */
		return in_shim ? -1 : SM_SECRET;
	return sm_route_fast((uintptr_t)ra);
}

static inline int routed(void *ra)
{
	return routed_in(__atomic_load_n(&state, __ATOMIC_RELAXED), ra);
}

/* Whether an allocation whose immediate caller returns to ra is secret: the full
 * decision, under the re-entry guard. */
static bool secret(void *ra)
{
	int c = routed(ra);
	if (c >= 0)
		return c == SM_SECRET;
	if (__atomic_load_n(&state, __ATOMIC_RELAXED) != ST_ROUTE)
		return false;
	/* Re-entered: the routing code's helpers allocating, or a signal handler that
	 * interrupted the routing code. Only what needs no lock can be asked. */
	if (in_shim)
		return sm_route_reentered((uintptr_t)ra);
	in_shim = 1;
	bool s = sm_route_decide(ra);
	in_shim = 0;
	return s;
}

/* ---- the API ---- */

/* A secret allocation, counted for SECRETMEM_STATS when it is on. */
static __attribute__((noinline)) void *secret_counted(size_t align, size_t size, void *ra)
{
	void *p = align <= 16 ? sm_arena_malloc(size) : sm_arena_memalign(align, size);
	if (p) {
		sm_stats_site(ra, size);
		sm_arena_publish();
	}
	return p;
}

static inline void *secret_memalign(size_t align, size_t size, void *ra)
{
	if (unlikely(sm_stats_on))
		return secret_counted(align, size, ra);
	return align <= 16 ? sm_arena_malloc(size) : sm_arena_memalign(align, size);
}

static inline void *secret_malloc(size_t size, void *ra)
{
	return secret_memalign(16, size, ra);
}

static __attribute__((noinline)) void *malloc_slow(size_t size, void *ra)
{
	if (starting()) /* our own start-up: the next allocator once it is known */
		return next.malloc ? next.malloc(size) : boot_alloc(16, size);
	if (secret(ra))
		return secret_malloc(size, ra);
	return next.malloc(size);
}

/* While rules are active: the cached answer for the call site ra, else the slow
 * path. */
static inline __attribute__((always_inline)) void *malloc_routed(int st, size_t size, void *ra)
{
	int c = routed_in(st, ra);
	if (likely(c == SM_ORDINARY))
		return next.malloc(size);
	if (c == SM_SECRET)
		return secret_malloc(size, ra);
	return malloc_slow(size, ra);
}

/* Passing through: a load, a compare and a jump. */
SM_EXPORT void *malloc(size_t size)
{
	int st = __atomic_load_n(&state, __ATOMIC_RELAXED);
	if (likely(st == ST_PASS))
		return next.malloc(size);
	return malloc_routed(st, size, __builtin_return_address(0));
}

static inline void free_secret(void *p)
{
	if (likely(!sm_stats_on)) {
		sm_arena_free(p);
		return;
	}
	sm_arena_free(p);
	sm_stats_free();
	sm_arena_publish();
}

static __attribute__((noinline)) void free_special(void *p)
{
	if (sm_arena_owns(p))
		free_secret(p);
	else if (!is_boot(p) && next.free)
		next.free(p);
}

static inline __attribute__((always_inline)) void free_impl(void *p)
{
	if (likely(!special(p)))
		next.free(p);
	else if (likely(sm_arena_owns(p) && !sm_stats_on))
		sm_arena_free(p);
	else
		free_special(p);
}

SM_EXPORT void free(void *p)
{
	free_impl(p);
}

static __attribute__((noinline)) void *calloc_slow(size_t n, size_t size, void *ra)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (starting())
		return next.calloc ? next.calloc(n, size) : boot_alloc(16, total);
	if (secret(ra))
		return secret_malloc(total, ra); /* fresh secret blocks are zero */
	return next.calloc(n, size);
}

SM_EXPORT void *calloc(size_t n, size_t size)
{
	int st = __atomic_load_n(&state, __ATOMIC_RELAXED);
	if (likely(st == ST_PASS))
		return next.calloc(n, size);
	void *ra = __builtin_return_address(0);
	if (likely(routed_in(st, ra) == SM_ORDINARY))
		return next.calloc(n, size);
	return calloc_slow(n, size, ra);
}

/* An ordinary block moves into secret memory: copy, wipe the old copy, release it. */
static void *move_to_secret(void *p, size_t size, void *ra)
{
	void *q = secret_malloc(size, ra);
	if (!q)
		return NULL;
	size_t old = next.malloc_usable_size(p);
	memcpy(q, p, old < size ? old : size);
	explicit_bzero(p, old);
	next.free(p);
	return q;
}

static void *realloc_impl(void *p, size_t size, void *ra)
{
	if (!p)
		return malloc_slow(size, ra);
	if (sm_arena_owns(p)) {
		if (size == 0) { /* glibc frees and returns NULL */
			free_secret(p);
			return NULL;
		}
		void *q = sm_arena_realloc(p, size);
		if (unlikely(sm_stats_on))
			sm_arena_publish();
		return q;
	}
	if (is_boot(p)) {
		void *q = malloc_slow(size, ra);
		if (q) {
			size_t old = boot_size(p);
			memcpy(q, p, old < size ? old : size);
		}
		return q;
	}
	if (starting()) /* only the loader's own reallocs during start-up get here */
		return next.realloc(p, size);
	if (size && secret(ra))
		return move_to_secret(p, size, ra);
	return next.realloc(p, size);
}

SM_EXPORT void *realloc(void *p, size_t size)
{
	if (likely(pass() && !special(p)))
		return next.realloc(p, size);
	return realloc_impl(p, size, __builtin_return_address(0));
}

SM_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (likely(pass() && !special(p)))
		return next.reallocarray ? next.reallocarray(p, n, size) : next.realloc(p, total);
	return realloc_impl(p, total, __builtin_return_address(0));
}

/* The aligned family. glibc's memalign, valloc and pvalloc round a non-power-of-two
 * alignment up; posix_memalign insists on a power of two and a multiple of
 * sizeof(void *); aligned_alloc (glibc 2.36) accepts what memalign accepts. */
static void *aligned_impl(size_t align, size_t size, void *ra, bool *handled)
{
	*handled = true;
	if (starting() && !next.malloc)
		return boot_alloc(align, size);
	if (secret(ra))
		return secret_memalign(align, size, ra);
	*handled = false;
	return NULL;
}

static size_t round_align(size_t align)
{
	if (align <= 16)
		return 16;
	if (align > SIZE_MAX / 2 + 1)
		return 0;
	return (align & (align - 1)) ? (size_t)1 << (64 - __builtin_clzl(align)) : align;
}

SM_EXPORT int posix_memalign(void **pp, size_t align, size_t size)
{
	if (likely(pass()))
		return next.posix_memalign(pp, align, size);
	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	bool handled;
	int saved = errno;
	void *p = aligned_impl(align, size, __builtin_return_address(0), &handled);
	if (!handled)
		return next.posix_memalign(pp, align, size);
	if (!p)
		return ENOMEM;
	errno = saved;
	*pp = p;
	return 0;
}

static void *memalign_next(size_t align, size_t size)
{
	if (next.memalign)
		return next.memalign(align, size);
	if (next.aligned_alloc)
		return next.aligned_alloc(align, size);
	void *p;
	size_t a = round_align(align);
	if (!a) {
		errno = EINVAL;
		return NULL;
	}
	int e = next.posix_memalign(&p, a, size);
	if (e) {
		errno = e;
		return NULL;
	}
	return p;
}

static void *memalign_impl(size_t align, size_t size, void *ra)
{
	size_t a = round_align(align);
	if (!a) {
		errno = EINVAL;
		return NULL;
	}
	bool handled;
	void *p = aligned_impl(a, size, ra, &handled);
	return handled ? p : memalign_next(align, size);
}

SM_EXPORT void *aligned_alloc(size_t align, size_t size)
{
	if (likely(pass()))
		return next.aligned_alloc ? next.aligned_alloc(align, size) : memalign_next(align, size);
	return memalign_impl(align, size, __builtin_return_address(0));
}

SM_EXPORT void *memalign(size_t align, size_t size)
{
	if (likely(pass()))
		return memalign_next(align, size);
	return memalign_impl(align, size, __builtin_return_address(0));
}

SM_EXPORT void *valloc(size_t size)
{
	if (likely(pass()) && next.valloc)
		return next.valloc(size);
	return memalign_impl(page_size, size, __builtin_return_address(0));
}

SM_EXPORT void *pvalloc(size_t size)
{
	if (likely(pass()) && next.pvalloc)
		return next.pvalloc(size);
	size_t rounded;
	if (__builtin_add_overflow(size, page_size - 1, &rounded)) {
		errno = ENOMEM;
		return NULL;
	}
	rounded &= ~(page_size - 1);
	return memalign_impl(page_size, rounded ? rounded : page_size, __builtin_return_address(0));
}

SM_EXPORT size_t malloc_usable_size(void *p)
{
	if (!p) {
		if (unlikely(probe))
			probe_reached = true;
		return 0;
	}
	if (sm_arena_owns(p))
		return sm_arena_usable_size(p);
	if (is_boot(p))
		return boot_size(p);
	return next.malloc_usable_size(p);
}

SM_EXPORT void free_sized(void *p, size_t size)
{
	if (sm_arena_owns(p) || is_boot(p) || !next.free_sized)
		free(p);
	else
		next.free_sized(p, size);
}

SM_EXPORT void free_aligned_sized(void *p, size_t align, size_t size)
{
	if (sm_arena_owns(p) || is_boot(p) || !next.free_aligned_sized)
		free(p);
	else
		next.free_aligned_sized(p, align, size);
}

/* ---- strdup and strndup ----
 *
 * The most common of libc's allocating functions: defined here, so that their
 * caller is the call site the cache knows, rather than libc, which a walk must look
 * through (~70 ns). libc's own internal calls keep their private copy and are looked
 * through as before. */

/* Passing through, they call malloc by its global name, so that a tool replacing
 * it (valgrind's memcheck does, in the shim too) sees these blocks as well. */
SM_EXPORT char *strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	int st = __atomic_load_n(&state, __ATOMIC_RELAXED);
	char *p = likely(st == ST_PASS) ? malloc(n)
					: malloc_routed(st, n, __builtin_return_address(0));
	return p ? memcpy(p, s, n) : NULL;
}

SM_EXPORT char *strndup(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	int st = __atomic_load_n(&state, __ATOMIC_RELAXED);
	char *p = likely(st == ST_PASS) ? malloc(n + 1)
					: malloc_routed(st, n + 1, __builtin_return_address(0));
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* ---- C++: operator new and delete ----
 *
 * libstdc++'s (and libc++'s) operator new calls malloc, so while rules are active
 * the shim would see the C++ runtime as the caller of every C++ allocation and walk
 * the stack (~70 ns) to find the real one. So the shim is operator new itself: its
 * caller is the call site, settled by the cache like malloc's. It is every form of
 * operator delete as well, so that no later library's delete (jemalloc's, say) is
 * ever handed a block the shim's new made.
 *
 * When an allocation fails, the C++ runtime's own operator new of the same form is
 * called (that of the object defining std::get_new_handler, even one a plugin
 * loaded with RTLD_LOCAL): it runs the new_handler and throws std::bad_alloc, or
 * returns NULL for the nothrow forms, and its retries come back through malloc and
 * are routed the same way. Never another allocator's operator new, which would
 * hand out ordinary memory.
 *
 * A program (or a library preloaded before the shim) that defines any operator new
 * or delete of its own gets exactly what it would without the shim: every form is
 * then passed to the definition after the shim, whose derived forms call the
 * program's. Its allocations still reach malloc, routed from there. Decided at the
 * first call of any of them.
 */

_Static_assert(__builtin_types_compatible_p(size_t, unsigned long),
	       "the mangled names below are those of a 64-bit size_t");

enum cxx_form {
	NEW, NEW_ARRAY, NEW_NOTHROW, NEW_ARRAY_NOTHROW,
	NEW_ALIGNED, NEW_ARRAY_ALIGNED, NEW_ALIGNED_NOTHROW, NEW_ARRAY_ALIGNED_NOTHROW,
	DEL, DEL_ARRAY, DEL_SIZED, DEL_ARRAY_SIZED, DEL_NOTHROW, DEL_ARRAY_NOTHROW,
	DEL_ALIGNED, DEL_ARRAY_ALIGNED, DEL_SIZED_ALIGNED, DEL_ARRAY_SIZED_ALIGNED,
	DEL_ALIGNED_NOTHROW, DEL_ARRAY_ALIGNED_NOTHROW,
	CXX_FORMS
};

static const char *const cxx_name[CXX_FORMS] = {
	"_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
	"_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
	"_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
	"_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
	"_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
	"_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
	"_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

enum { CXX_UNKNOWN, CXX_OURS, CXX_PASS_ON };
static int cxx_mode;
static void *cxx_pass[CXX_FORMS]; /* CXX_PASS_ON: where each form goes */

static int next_dlclose(void *handle);

/* The C++ runtime: the object defining std::get_new_handler, looked for first from
 * the object whose code is at ra (a plugin loaded with RTLD_LOCAL may bring its
 * own), then globally. Returns a handle whose own definitions come first (close it
 * with next_dlclose; the runtime stays, its users need it) and its load bias. */
static void *cxx_runtime_open(void *ra, unsigned long *base)
{
	static const char *const marks[] = { "_ZSt15get_new_handlerv",
					      "_ZNSt3__115get_new_handlerEv" /* libc++ */ };
	void *g = NULL;
	Dl_info di;
	if (ra && dladdr(ra, &di) && di.dli_fname && di.dli_fname[0]) {
		void *caller = dlopen(di.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
		for (size_t i = 0; caller && i < 2 && !g; i++)
			g = dlsym(caller, marks[i]);
		if (caller)
			next_dlclose(caller);
	}
	for (size_t i = 0; i < 2 && !g; i++)
		g = dlsym(RTLD_DEFAULT, marks[i]);
	*base = g ? sm_object_base(g) : 0;
	if (!g || !dladdr(g, &di) || !di.dli_fname)
		return NULL;
	return dlopen(di.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
}

/* Whether the shim's operators serve, or something else defines one: the program
 * or a library preloaded before the shim (found first in the global scope), or a
 * library after it that is neither the C++ runtime nor the next allocator (a
 * replacement the program links). Then every form is passed on: to such a
 * replacement where there is one, else to the C++ runtime's own (whose derived forms
 * call the replaced ones, and whose base forms call malloc and free, so that no
 * block of the shim's ever reaches another allocator's delete). Threads racing here
 * compute the same answer; no lock, since one of them may hold the loader's. */
static __attribute__((noinline)) int cxx_resolve(void *ra)
{
	starting(); /* our own start-up first: dlsym allocates */
	unsigned long self = sm_object_base((const void *)cxx_resolve);
	unsigned long alloc = sm_object_base((const void *)next.malloc);
	unsigned long rt_base;
	void *rt = cxx_runtime_open(ra, &rt_base);
	int mode = CXX_OURS;
	for (int k = 0; k < CXX_FORMS; k++) {
		void *g = dlsym(RTLD_DEFAULT, cxx_name[k]);
		if (g && sm_object_base(g) != self)
			mode = CXX_PASS_ON;
		void *n = dlsym(RTLD_NEXT, cxx_name[k]);
		unsigned long nb = n ? sm_object_base(n) : 0;
		void *to = rt ? dlsym(rt, cxx_name[k]) : NULL;
		if (n && rt_base && nb != rt_base && nb != alloc) {
			mode = CXX_PASS_ON;
			to = n;
		}
		__atomic_store_n(&cxx_pass[k], to ? to : n, __ATOMIC_RELAXED);
	}
	if (rt)
		next_dlclose(rt);
	int expected = CXX_UNKNOWN;
	if (__atomic_compare_exchange_n(&cxx_mode, &expected, mode, false, __ATOMIC_RELEASE,
					__ATOMIC_ACQUIRE)) {
		if (mode == CXX_PASS_ON)
			sm_info("operator new or delete is defined outside the C++ runtime: every "
				"form goes to that definition or the runtime's, as without the shim "
				"(allocations are routed at malloc)");
		return mode;
	}
	return expected;
}

/* Whether the shim's own operators serve (else: pass every form on). */
static inline bool cxx_ours(void *ra)
{
	int m = __atomic_load_n(&cxx_mode, __ATOMIC_ACQUIRE);
	return likely(m == CXX_OURS) || (m == CXX_UNKNOWN && cxx_resolve(ra) == CXX_OURS);
}

/* Hands a failed allocation to the C++ runtime's own operator new of the same form:
 * that of the runtime the calling code uses, looked up each time (a failure is
 * rare, and plugins with runtimes of their own come and go). */
static __attribute__((noinline)) void *cxx_new_failed(enum cxx_form k, size_t size, size_t align,
						       const void *nothrow, void *ra)
{
	unsigned long base;
	void *rt = cxx_runtime_open(ra, &base);
	void *f = rt ? dlsym(rt, cxx_name[k]) : NULL;
	if (rt)
		next_dlclose(rt);
	if (f && sm_object_base(f) == sm_object_base((const void *)cxx_new_failed))
		f = NULL; /* never ourselves */
	if (!f) {
		if (nothrow)
			return NULL;
		sm_abort("operator new: out of memory, and no C++ runtime in the process to "
			 "throw std::bad_alloc");
	}
	switch (k) {
	case NEW:
	case NEW_ARRAY:
		return ((void *(*)(size_t))f)(size);
	case NEW_NOTHROW:
	case NEW_ARRAY_NOTHROW:
		return ((void *(*)(size_t, const void *))f)(size, nothrow);
	case NEW_ALIGNED:
	case NEW_ARRAY_ALIGNED:
		return ((void *(*)(size_t, size_t))f)(size, align);
	default:
		return ((void *(*)(size_t, size_t, const void *))f)(size, align, nothrow);
	}
}

static inline __attribute__((always_inline)) void *cxx_new(enum cxx_form k, size_t size,
							  const void *nothrow, void *ra)
{
	size_t n = size ? size : 1;
	int st = __atomic_load_n(&state, __ATOMIC_RELAXED);
	void *p = likely(st == ST_PASS) ? next.malloc(n) : malloc_routed(st, n, ra);
	return likely(p) ? p : cxx_new_failed(k, size, 0, nothrow, ra);
}

static inline __attribute__((always_inline)) void *cxx_new_aligned(enum cxx_form k, size_t size,
								  size_t align,
								  const void *nothrow, void *ra)
{
	size_t n = size ? size : 1;
	void *p = likely(pass()) ? memalign_next(align, n) : memalign_impl(align, n, ra);
	return likely(p) ? p : cxx_new_failed(k, size, align, nothrow, ra);
}

/* Declared by <new>, in C++. */
void *_Znwm(size_t n);
void *_Znam(size_t n);
void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt);
void *_ZnamRKSt9nothrow_t(size_t n, const void *nt);
void *_ZnwmSt11align_val_t(size_t n, size_t a);
void *_ZnamSt11align_val_t(size_t n, size_t a);
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *nt);
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *nt);

#define RA __builtin_return_address(0)
#define PASS_ON(form, type) ((type)__atomic_load_n(&cxx_pass[form], __ATOMIC_RELAXED))

#define CXX_NEW(name, form, params, args, nt) \
	SM_EXPORT void *name params \
	{ \
		if (unlikely(!cxx_ours(RA)) && cxx_pass[form]) \
			return PASS_ON(form, void *(*)params) args; \
		return cxx_new(form, n, nt, RA); \
	}
#define CXX_NEW_ALIGNED(name, form, params, args, nt) \
	SM_EXPORT void *name params \
	{ \
		if (unlikely(!cxx_ours(RA)) && cxx_pass[form]) \
			return PASS_ON(form, void *(*)params) args; \
		return cxx_new_aligned(form, n, a, nt, RA); \
	}
CXX_NEW(_Znwm, NEW, (size_t n), (n), NULL)
CXX_NEW(_Znam, NEW_ARRAY, (size_t n), (n), NULL)
CXX_NEW(_ZnwmRKSt9nothrow_t, NEW_NOTHROW, (size_t n, const void *nt), (n, nt), nt)
CXX_NEW(_ZnamRKSt9nothrow_t, NEW_ARRAY_NOTHROW, (size_t n, const void *nt), (n, nt), nt)
CXX_NEW_ALIGNED(_ZnwmSt11align_val_t, NEW_ALIGNED, (size_t n, size_t a), (n, a), NULL)
CXX_NEW_ALIGNED(_ZnamSt11align_val_t, NEW_ARRAY_ALIGNED, (size_t n, size_t a), (n, a), NULL)
CXX_NEW_ALIGNED(_ZnwmSt11align_val_tRKSt9nothrow_t, NEW_ALIGNED_NOTHROW,
		(size_t n, size_t a, const void *nt), (n, a, nt), nt)
CXX_NEW_ALIGNED(_ZnamSt11align_val_tRKSt9nothrow_t, NEW_ARRAY_ALIGNED_NOTHROW,
		(size_t n, size_t a, const void *nt), (n, a, nt), nt)
#undef CXX_NEW
#undef CXX_NEW_ALIGNED

/* Every form of delete frees: the size and alignment add nothing free needs. */
void _ZdlPv(void *p);
void _ZdaPv(void *p);
void _ZdlPvm(void *p, size_t n);
void _ZdaPvm(void *p, size_t n);
void _ZdlPvRKSt9nothrow_t(void *p, const void *nt);
void _ZdaPvRKSt9nothrow_t(void *p, const void *nt);
void _ZdlPvSt11align_val_t(void *p, size_t a);
void _ZdaPvSt11align_val_t(void *p, size_t a);
void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t a);
void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t a);
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *nt);
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *nt);

#define CXX_DELETE(name, form, params, args) \
	SM_EXPORT void name params \
	{ \
		if (unlikely(!cxx_ours(RA)) && cxx_pass[form]) \
			PASS_ON(form, void (*)params) args; \
		else \
			free_impl(p); \
	}
CXX_DELETE(_ZdlPv, DEL, (void *p), (p))
CXX_DELETE(_ZdaPv, DEL_ARRAY, (void *p), (p))
CXX_DELETE(_ZdlPvm, DEL_SIZED, (void *p, size_t n), (p, n))
CXX_DELETE(_ZdaPvm, DEL_ARRAY_SIZED, (void *p, size_t n), (p, n))
CXX_DELETE(_ZdlPvRKSt9nothrow_t, DEL_NOTHROW, (void *p, const void *nt), (p, nt))
CXX_DELETE(_ZdaPvRKSt9nothrow_t, DEL_ARRAY_NOTHROW, (void *p, const void *nt), (p, nt))
CXX_DELETE(_ZdlPvSt11align_val_t, DEL_ALIGNED, (void *p, size_t a), (p, a))
CXX_DELETE(_ZdaPvSt11align_val_t, DEL_ARRAY_ALIGNED, (void *p, size_t a), (p, a))
CXX_DELETE(_ZdlPvmSt11align_val_t, DEL_SIZED_ALIGNED, (void *p, size_t n, size_t a), (p, n, a))
CXX_DELETE(_ZdaPvmSt11align_val_t, DEL_ARRAY_SIZED_ALIGNED, (void *p, size_t n, size_t a),
	   (p, n, a))
CXX_DELETE(_ZdlPvSt11align_val_tRKSt9nothrow_t, DEL_ALIGNED_NOTHROW,
	   (void *p, size_t a, const void *nt), (p, a, nt))
CXX_DELETE(_ZdaPvSt11align_val_tRKSt9nothrow_t, DEL_ARRAY_ALIGNED_NOTHROW,
	   (void *p, size_t a, const void *nt), (p, a, nt))
#undef CXX_DELETE
#undef PASS_ON
#undef RA

/* ---- dlclose: code addresses of the unloaded object may be reused ---- */

/* The loader's dlclose, without telling the routing code. */
static int next_dlclose(void *handle)
{
	static int (*f)(void *);
	if (!f)
		f = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
	return f(handle);
}

SM_EXPORT int dlclose(void *handle)
{
	int r = next_dlclose(handle);
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == ST_ROUTE) {
		in_shim++;
		sm_route_objects_changed();
		in_shim--;
	}
	return r;
}

/* ---- secretmem.h ---- */

void secretmem_impl_scope_begin(void)
{
	starting();
	if (sm_opt.mode == SM_MODE_OFF)
		return;
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != ST_ROUTE)
		routing_on(); /* the first scope of a program that set no rule */
	sm_thread.scope++;
}

void secretmem_impl_scope_end(void)
{
	if (sm_thread.scope)
		sm_thread.scope--;
	else if (sm_opt.mode != SM_MODE_OFF)
		sm_warn("secretmem_scope_end() without a matching secretmem_scope_begin()");
}

/* Called by the constructor SECRETMEM_ANNOTATE_LIBRARY places in an annotated
 * object, when it is loaded at start-up or by dlopen: routing starts (if no rule
 * had started it) and the object table learns the new object now. */
void secretmem_impl_annotated(void)
{
	starting();
	if (sm_opt.mode == SM_MODE_OFF)
		return;
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != ST_ROUTE)
		routing_on();
	in_shim++;
	sm_route_objects_changed();
	in_shim--;
}

int secretmem_impl_is_secret(const void *p)
{
	return p && sm_arena_owns(p);
}

int secretmem_impl_active(void)
{
	starting();
	return sm_opt.mode != SM_MODE_OFF;
}
