/* SPDX-License-Identifier: MIT */
/*
 * The interposed allocation API: malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size,
 * free_sized and free_aligned_sized, strdup and strndup, plus the secretmem.h
 * entry points, and the secret entry points that a tagged object's own references
 * to the API are pointed at (reloc.c): secret memory without a routing decision.
 *
 * Each call either goes to the secret arena (arena.c) or to the next allocator in
 * the chain (glibc, or a jemalloc preloaded after us), found with dlsym(RTLD_NEXT).
 * free() decides by address alone: one range check.
 *
 * Start-up: programs allocate before any constructor runs, so the first call
 * initialises (options, next allocator, arena probe, routing rules). The
 * allocations dlsym makes while we look the next allocator up are served from a
 * static buffer and recognised on free. A thread-local guard keeps the shim from
 * re-entering itself: whatever the routing code's helpers (the unwinder, the loader)
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
#include "audit.h"
#include "compiler.h"
#include "elfsym.h"
#include "exec.h"
#include "atfork.h"
#include "sandbox.h"
#include "guard.h"
#include "log.h"
#include "meta.h"
#include "options.h"
#include "pages.h"
#include "reloc.h"
#include "ro.h"
#include "route.h"
#include "stats.h"
#include "streams.h"

#define SM_EXPORT __attribute__((visibility("default")))

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

/* ST_AUDIT (SECRETMEM_AUDIT): nothing is secret, every call takes the slow path
 * and is recorded (audit.c). */
enum state { ST_UNINIT, ST_INIT, ST_PASS, ST_ROUTE, ST_AUDIT };

/* Read on every call: ST_PASS is the fast path. */
static int state = ST_UNINIT;

static inline bool pass(void)
{
	return __atomic_load_n(&state, __ATOMIC_RELAXED) == ST_PASS;
}

/* Only ever asked on slow paths. */
static inline bool auditing(void)
{
	return __atomic_load_n(&state, __ATOMIC_RELAXED) == ST_AUDIT;
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
} __attribute__((aligned(SM_RO_PAGE))) next SM_RO; /* read-only after start-up (ro.h) */

static bool next_ready; /* every field of next is set */

#define in_shim sm_thread.in_shim
static pthread_t init_thread;

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
	sm_api_next_malloc = (void *)next.malloc;
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
	if (sm_arena_span) { /* the whole reservation: sm_arena_span grows later */
		if (sm_arena_base < lo)
			lo = sm_arena_base;
		if (sm_arena_base + sm_arena_reserved > hi)
			hi = sm_arena_base + sm_arena_reserved;
	}
	if (lo > hi)
		lo = hi = 0; /* nothing special: an empty range */
	set_special(lo, hi);
}

/* The program's malloc must be ours, or no rule can route anything: another
 * allocator preloaded before the shim (or a tool such as valgrind) serves it then.
 * Asked by calling the first malloc_usable_size of the global scope with NULL,
 * which every allocator that replaces malloc replaces too: through the pointer
 * dlsym gives (which may be a PLT entry of the program's; the call still lands
 * where the program's calls do), so that no compiler can inline ours into the
 * probe. */
static __thread bool probe, probe_reached __attribute__((tls_model("initial-exec")));
static const char *malloc_owner; /* NULL: the shim's; set at start-up */

static void probe_malloc_owner(void)
{
	size_t (*f)(void *) = (size_t (*)(void *))dlsym(RTLD_DEFAULT, "malloc_usable_size");
	if (!f)
		return;
	probe = true;
	probe_reached = false;
	(void)f(NULL);
	probe = false;
	if (probe_reached)
		return;
	Dl_info di;
	malloc_owner = dladdr((void *)f, &di) && di.dli_fname && di.dli_fname[0] &&
				       sm_object_base((void *)f) !=
					       sm_object_base((const void *)probe_malloc_owner)
			       ? di.dli_fname
			       : "something else (another allocator, or a tool such as valgrind)";
}

/* An allocator preloaded after the shim (LD_PRELOAD=shim:libjemalloc.so...) that
 * defines operator new as well as malloc serves C++ allocations itself: they
 * never reach malloc, so no rule or scope makes them secret. Known exactly: the
 * object that defines operator new (_Znwm) is the one that serves the malloc
 * after the shim's. Said once at start-up when the shim has rules. */
static void check_new_owner(void)
{
	if (sm_opt.mode == SM_MODE_OFF || !sm_options_have_rules(&sm_opt))
		return;
	void *nw = dlsym(RTLD_DEFAULT, "_Znwm"), *m = dlsym(RTLD_NEXT, "malloc");
	if (!nw || !m || sm_object_base(nw) != sm_object_base(m))
		return;
	Dl_info di;
	sm_warn("operator new is served by %s, the allocator after the shim, not through "
		"malloc: C++ allocations (new, std::string, containers) are not secret; "
		"preload the shim alone, or the allocator without its operator new",
		dladdr(nw, &di) && di.dli_fname && di.dli_fname[0] ? di.dli_fname : "another object");
}

/* Asked once at start-up (no loader lock may be taken later: see routing_on). */
static void check_first(void)
{
	if (malloc_owner)
		sm_die("malloc is served by %s, not the shim: nothing could be made secret; put "
		       "libsecretmem-preload.so first in LD_PRELOAD", malloc_owner);
}

/* Routing starts: at start-up when rules are set (walks), when an annotated
 * library is loaded (walks), or at a program's first scope (no walk: in a scope
 * everything is secret). Loading the unwinder takes the loader's lock, which is
 * why a scope must not: a thread in dlopen may be waiting for this one (a library
 * constructor that joins a thread it started). */
static pthread_mutex_t routing_lock = PTHREAD_MUTEX_INITIALIZER;

static void routing_on(bool walks)
{
	if (auditing())
		return; /* an audit records what the program does with no rule */
	check_first();
	if (walks) {
		in_shim++;
		sm_route_load_unwinder();
		in_shim--;
	}
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == ST_ROUTE)
		return;
	pthread_mutex_lock(&routing_lock);
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != ST_ROUTE) {
		/* the standard streams' buffers are secret while secret memory is held */
		sm_arena_streams_hooks(sm_streams_hold, sm_streams_give_back);
		sm_arena_init();
		set_special_ranges();
		__atomic_store_n(&state, ST_ROUTE, __ATOMIC_RELEASE);
		sm_stats_refresh();
	}
	pthread_mutex_unlock(&routing_lock);
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
	sm_options_read();
	sm_sandbox_init();
	sm_seccomp_hooks_init();
	sm_exec_init(sm_opt.mode != SM_MODE_OFF && sm_options_have_rules(&sm_opt));
	sm_stats_init();
	resolve_next();
	sm_atfork_init(); /* before any handler a library constructor registers */
	probe_malloc_owner();
	check_new_owner();
	/* Auditing: no rule is resolved, every free() looks closer (it is recorded). */
	bool audit = sm_opt.audit_dir && !sm_options_have_rules(&sm_opt) &&
		     sm_audit_init(sm_opt.audit_dir);
	if (sm_opt.audit_dir && !audit)
		sm_audit_exit_only(sm_opt.audit_dir);
	bool route = !audit && sm_opt.mode != SM_MODE_OFF && sm_route_init();
	if (sm_opt.mode != SM_MODE_OFF)
		__atomic_store_n(&sm_atfork_route, true, __ATOMIC_RELEASE);
	in_shim = 0;
	sm_ro_seal();
	if (audit) {
		set_special(0, UINTPTR_MAX);
		__atomic_store_n(&state, ST_AUDIT, __ATOMIC_RELEASE);
	} else if (route) {
		routing_on(true);
	} else {
		/* A scope begun meanwhile by another thread may have started routing
		 * (and set the special ranges to the arena): keep that. */
		pthread_mutex_lock(&routing_lock);
		int init_state = ST_INIT;
		if (__atomic_compare_exchange_n(&state, &init_state, ST_PASS, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			set_special_ranges();
		pthread_mutex_unlock(&routing_lock);
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
	if (unlikely(auditing()))
		return sm_audit_alloc(next.malloc(size), size, ra);
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
	else if (sm_arena_reserved && (uintptr_t)p - sm_arena_base < sm_arena_reserved)
		/* In the reservation above every chunk so far: no block ever was there. */
		sm_abort("free(): invalid pointer %p (not a secret block)", p);
	else if (!is_boot(p) && next.free) {
		if (unlikely(auditing()))
			sm_audit_free(p, next.malloc_usable_size(p));
		next.free(p);
	}
}

SM_EXPORT void free(void *p)
{
	if (likely(!special(p)))
		next.free(p);
	else if (likely(sm_arena_owns(p) && !sm_stats_on))
		sm_arena_free(p);
	else
		free_special(p);
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
	if (unlikely(auditing()))
		return sm_audit_alloc(next.calloc(n, size), total, ra);
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
	if (unlikely(auditing())) {
		/* A move as malloc, copy and free, so that the old block is looked at
		 * and wiped like any freed block (glibc's realloc would leave it as it
		 * was, with no owner on record). */
		size_t old = next.malloc_usable_size(p);
		void *q = size ? next.malloc(size) : NULL;
		if (!q && size)
			return NULL; /* p is still there */
		if (q)
			memcpy(q, p, old < size ? old : size);
		sm_audit_free(p, old);
		next.free(p);
		return sm_audit_alloc(q, size, ra);
	}
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
	void *ra = __builtin_return_address(0);
	void *p = aligned_impl(align, size, ra, &handled);
	if (!handled) {
		int e = next.posix_memalign(pp, align, size);
		if (unlikely(auditing()) && !e)
			sm_audit_alloc(*pp, size, ra);
		return e;
	}
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
	if (handled)
		return p;
	p = memalign_next(align, size);
	return unlikely(auditing()) ? sm_audit_alloc(p, size, ra) : p;
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
	return memalign_impl(sm_pages_size(), size, __builtin_return_address(0));
}

SM_EXPORT void *pvalloc(size_t size)
{
	if (likely(pass()) && next.pvalloc)
		return next.pvalloc(size);
	size_t rounded, ps = sm_pages_size();
	if (__builtin_add_overflow(size, ps - 1, &rounded)) {
		errno = ENOMEM;
		return NULL;
	}
	rounded &= ~(ps - 1);
	return memalign_impl(ps, rounded ? rounded : ps, __builtin_return_address(0));
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
	if (sm_arena_owns(p) || is_boot(p) || !next.free_sized || auditing())
		free(p);
	else
		next.free_sized(p, size);
}

SM_EXPORT void free_aligned_sized(void *p, size_t align, size_t size)
{
	if (sm_arena_owns(p) || is_boot(p) || !next.free_aligned_sized || auditing())
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

/* ---- secret entry points ----
 *
 * What a tagged object's own references to the allocation API call (reloc.c points
 * them here): secret memory with no routing decision, since the caller is known.
 * Until routing runs, and inside the shim (whatever the routing code's helpers
 * allocate), they decide as the public functions do. free, malloc_usable_size,
 * free_sized and free_aligned_sized handle both kinds of block already. */

static inline bool secret_entry(void)
{
	return likely(__atomic_load_n(&state, __ATOMIC_RELAXED) == ST_ROUTE && !in_shim);
}

static void *secret_entry_malloc(size_t size)
{
	void *ra = __builtin_return_address(0);
	return secret_entry() ? secret_malloc(size, ra) : malloc_slow(size, ra);
}

static void *secret_entry_calloc(size_t n, size_t size)
{
	void *ra = __builtin_return_address(0);
	size_t total;
	if (!secret_entry() || __builtin_mul_overflow(n, size, &total))
		return calloc_slow(n, size, ra);
	return secret_malloc(total, ra); /* fresh secret blocks are zero */
}

static void *secret_realloc(void *p, size_t size, void *ra)
{
	if (!secret_entry())
		return realloc_impl(p, size, ra);
	if (!p)
		return secret_malloc(size, ra);
	if (sm_arena_owns(p) || is_boot(p))
		return realloc_impl(p, size, ra); /* stays secret, or is copied */
	if (!size)
		return next.realloc(p, 0);
	return move_to_secret(p, size, ra);
}

static void *secret_entry_realloc(void *p, size_t size)
{
	return secret_realloc(p, size, __builtin_return_address(0));
}

static void *secret_entry_reallocarray(void *p, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return secret_realloc(p, total, __builtin_return_address(0));
}

static int secret_entry_posix_memalign(void **pp, size_t align, size_t size)
{
	if (!secret_entry())
		return posix_memalign(pp, align, size);
	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	int saved = errno;
	void *p = secret_memalign(align, size, __builtin_return_address(0));
	if (!p)
		return ENOMEM;
	errno = saved;
	*pp = p;
	return 0;
}

static void *secret_aligned(size_t align, size_t size, void *ra)
{
	if (!secret_entry())
		return memalign_impl(align, size, ra);
	size_t a = round_align(align);
	if (!a) {
		errno = EINVAL;
		return NULL;
	}
	return secret_memalign(a, size, ra);
}

static void *secret_entry_memalign(size_t align, size_t size)
{
	return secret_aligned(align, size, __builtin_return_address(0));
}

static void *secret_entry_valloc(size_t size)
{
	return secret_aligned(sm_pages_size(), size, __builtin_return_address(0));
}

static void *secret_entry_pvalloc(size_t size)
{
	size_t rounded, ps = sm_pages_size();
	if (__builtin_add_overflow(size, ps - 1, &rounded)) {
		errno = ENOMEM;
		return NULL;
	}
	rounded &= ~(ps - 1);
	return secret_aligned(ps, rounded ? rounded : ps,
			      __builtin_return_address(0));
}

static char *secret_entry_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	void *ra = __builtin_return_address(0);
	char *p = secret_entry() ? secret_malloc(n, ra) : malloc_slow(n, ra);
	return p ? memcpy(p, s, n) : NULL;
}

static char *secret_entry_strndup(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	void *ra = __builtin_return_address(0);
	char *p = secret_entry() ? secret_malloc(n + 1, ra) : malloc_slow(n + 1, ra);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* The shim's own functions, not what the global scope binds the names to (an
 * executable that defines malloc comes first there). */
#if defined(__clang__)
#define SM_COPY(name)
#else
#define SM_COPY(name) copy(name),
#endif
#define SELF(name)                                                                      \
	extern __typeof(name) sm_self_##name                                            \
		__attribute__((alias(#name), SM_COPY(name) visibility("hidden")));
SELF(malloc) SELF(calloc) SELF(realloc) SELF(reallocarray) SELF(posix_memalign)
SELF(aligned_alloc) SELF(memalign) SELF(valloc) SELF(pvalloc) SELF(strdup) SELF(strndup)
SELF(free) SELF(malloc_usable_size) SELF(free_sized) SELF(free_aligned_sized)
#undef SELF
#define API_FN(name, secret) { #name, (void *)sm_self_##name, (void *)secret }
const struct sm_api_fn sm_api_fns[] = {
	API_FN(malloc, secret_entry_malloc),
	API_FN(calloc, secret_entry_calloc),
	API_FN(realloc, secret_entry_realloc),
	API_FN(reallocarray, secret_entry_reallocarray),
	API_FN(posix_memalign, secret_entry_posix_memalign),
	API_FN(aligned_alloc, secret_entry_memalign),
	API_FN(memalign, secret_entry_memalign),
	API_FN(valloc, secret_entry_valloc),
	API_FN(pvalloc, secret_entry_pvalloc),
	API_FN(strdup, secret_entry_strdup),
	API_FN(strndup, secret_entry_strndup),
	API_FN(free, free),
	API_FN(malloc_usable_size, malloc_usable_size),
	API_FN(free_sized, free_sized),
	API_FN(free_aligned_sized, free_aligned_sized),
};
const size_t sm_api_nfns = sizeof(sm_api_fns) / sizeof(sm_api_fns[0]);

/* ---- dlclose: code addresses of the unloaded object may be reused ---- */

/* ---- dlopen, dlmopen, dlclose: the routing tables hear of loads and unloads ----
 *
 * dlopen and dlmopen are assembly entry points (dlopen.S) that call the pre-hook
 * below and jump to the real function, so that glibc still sees the program's
 * return address. dlclose has its hook before and after the real call: nothing cached
 * about the object may be trusted from before it can be unmapped until after. */

static int (*next_dlclose)(void *);

/* The real dlopen (which 0), dlmopen (1) or dlsym (2); resolved on first use,
 * under the re-entry guard (dlsym allocates). dlopen and dlmopen mark the tables
 * stale; dlsym brings them up to date first (sm_route_settle), so that what the
 * program reaches through the pointer it returns is registered. */
__attribute__((visibility("hidden"))) void *sm_dlopen_prehook(int which, uintptr_t a0,
								uintptr_t a1);

/* The real dlsym, for the shim's own look-ups of the global scope. */
void *sm_global_symbol(const char *name)
{
	void *(*real)(void *, const char *) =
		(void *(*)(void *, const char *))sm_dlopen_prehook(3, 0, 0);
	return real(RTLD_DEFAULT, name);
}

/* dlmopen into a namespace of its own: the library and everything it loads there
 * get that namespace's own C library, whose malloc the shim is not (a preload
 * reaches the base namespace only), so nothing allocated there is secret, and
 * secretmem.h annotations there do nothing. Said once per process, naming the
 * first such library, when the shim protects anything. */
static void warn_dlmopen(Lmid_t lmid, const char *file)
{
	static bool warned;
	if (lmid == LM_ID_BASE || warned || sm_opt.mode == SM_MODE_OFF ||
	    (!sm_options_have_rules(&sm_opt) &&
	     __atomic_load_n(&state, __ATOMIC_ACQUIRE) != ST_ROUTE))
		return;
	warned = true;
	char shown[80];
	size_t n = 0;
	for (const char *c = file; c && *c && n < sizeof(shown) - 1; c++)
		shown[n++] = (unsigned char)*c < 0x20 || *c == 0x7f ? '?' : *c;
	shown[n] = '\0';
	sm_warn("dlmopen(%s) into a namespace of its own: the library and what it loads there "
		"use that namespace's C library, which the shim does not serve; nothing they "
		"allocate is secret (rules and secretmem.h annotations do not reach there); load "
		"it with dlopen to protect it",
		file ? shown : "NULL");
}

void *sm_dlopen_prehook(int which, uintptr_t a0, uintptr_t a1)
{
	static void *real[3];
	static const char *const names[3] = { "dlopen", "dlmopen", "dlsym" };
	int saved = errno;
	int k = which == 3 ? 2 : which; /* 3: the real dlsym for the shim itself */
	void *f = __atomic_load_n(&real[k], __ATOMIC_ACQUIRE);
	if (!f) {
		in_shim++;
		/* dlsym is the shim's own: the real one through dlvsym, which is not. */
		f = k == 2 ? dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34") : dlsym(RTLD_NEXT, names[k]);
		in_shim--;
		if (!f)
			sm_die("cannot find the next %s", names[k]);
		__atomic_store_n(&real[k], f, __ATOMIC_RELEASE);
	}
	if (which == 3) {
		/* the shim's own use: nothing to settle */
	} else if (which == 2) {
		in_shim++;
		sm_route_settle();
		in_shim--;
	} else {
		if (which == 1)
			warn_dlmopen((Lmid_t)a0, (const char *)a1);
		sm_route_loading();
	}
	errno = saved;
	return f;
}

/* dlsym (dlopen.S): a tagged object that asks for a function of the allocation
 * API, from any handle (RTLD_DEFAULT, RTLD_NEXT, which gives glibc's malloc, or a
 * library's), gets the secret entry point, as its own references to it do
 * (reloc.c); free and malloc_usable_size stay the shim's, which handle both
 * kinds of block. Returns NULL with the answer in *result, else the real dlsym,
 * which the stub jumps to with the caller's return address. The next allocator's
 * own object (a tagged allocator preloaded after the shim) is left alone: the
 * shim calls its malloc, which must not call back into the shim. */
__attribute__((visibility("hidden"))) void *sm_dlsym_prehook(void *handle, const char *name,
							     void *ra, void **result);

void *sm_dlsym_prehook(void *handle, const char *name, void *ra, void **result)
{
	(void)handle;
	void *f = sm_dlopen_prehook(2, 0, 0);
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != ST_ROUTE || !name || in_shim)
		return f;
	const struct sm_api_fn *fn = NULL;
	for (size_t i = 0; i < sm_api_nfns && !fn; i++)
		if (strcmp(sm_api_fns[i].name, name) == 0)
			fn = &sm_api_fns[i];
	if (!fn)
		return f;
	int saved = errno;
	in_shim++;
	bool tagged = sm_route_tagged_object((uintptr_t)ra) &&
		      sm_object_base(ra) != sm_object_base((const void *)next.malloc);
	in_shim--;
	errno = saved;
	if (!tagged)
		return f;
	*result = fn->secret;
	return NULL;
}

SM_EXPORT int dlclose(void *handle)
{
	int (*f)(void *) = __atomic_load_n(&next_dlclose, __ATOMIC_ACQUIRE);
	if (!f) {
		in_shim++;
		f = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
		in_shim--;
		if (!f)
			sm_die("cannot find the next dlclose");
		__atomic_store_n(&next_dlclose, f, __ATOMIC_RELEASE);
	}
	in_shim++;
	sm_route_closing(true);
	in_shim--;
	int r = f(handle);
	int saved = errno;
	in_shim++;
	sm_route_closing(false);
	in_shim--;
	errno = saved;
	return r;
}

/* ---- secretmem.h ---- */

void secretmem_impl_scope_begin(void)
{
	starting();
	if (sm_opt.mode == SM_MODE_OFF)
		return;
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != ST_ROUTE)
		routing_on(false); /* the first scope of a program that set no rule */
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
	routing_on(true); /* its callers of libc are found by walks */
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
