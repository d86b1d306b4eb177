/* SPDX-License-Identifier: MIT */
/*
 * Tail-out wrappers (see tailout.h). A tagged function ending in
 * `return ::operator new(n);` or `return wcsdup(s);` is a jump: the function the
 * shim looks through returns straight into the tagged function's caller, whose
 * return address is all the allocator sees, so the block would count as the
 * caller's. reloc.c points the tagged object's references to these functions here
 * instead: each wrapper raises the thread's scope depth (sm_thread.scope, as
 * secretmem_scope_begin() does), calls the real function, and lowers it again.
 * What the function allocates inside is secret whoever calls malloc; its frees
 * are decided by address, as every free is.
 *
 * operator new throws bad_alloc: the scope must end then too. The wrappers carry
 * a personality routine of their own (tail_personality, named in their unwind
 * information with .cfi_personality), which lowers the depth when the unwinder's
 * cleanup phase passes the wrapper's frame and lets the exception go on. It reads
 * no LSDA and calls nothing, so the shim needs neither -fexceptions nor libgcc_s
 * at load time (an exception can only be thrown where an unwinder is loaded).
 *
 * The real function: the definition the object's reference was bound to
 * (sm_tail_bind), or, for a reference not bound yet (lazy binding), looked up at
 * the wrapper's first call (tail_resolve), under the re-entry guard: the global
 * scope's definition, else the one the object's own dependencies give (an object
 * dlopened with RTLD_LOCAL brings libstdc++ in its local scope only). One
 * definition per name for the whole process; a reference bound to another is
 * left alone. Nothing here runs for the C++ runtime until a tagged object calls
 * it: the shim never loads libstdc++ and works before, after or without it.
 */
#define _GNU_SOURCE
#include "config.h"
#include "tailout.h"
#include "compiler.h"
#include "guard.h"
#include "log.h"
#include "reloc.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/types.h>
#include <unwind.h>
#include <wchar.h>

#ifndef __GCC_HAVE_DWARF2_CFI_ASM
#error "tailout.c needs the compiler's unwind information (-fasynchronous-unwind-tables)"
#endif

/* The real dlsym (preload.c): the shim's own dlsym settles the routing tables. */
void *sm_dlopen_prehook(int which, uintptr_t a0, uintptr_t a1);

/* Every function a tagged object may tail-call that allocates memory its caller
 * owns and that the shim looks through (libc, the C++ runtime): name, return
 * type, parameters, arguments. The types need only match the calling convention.
 * realpath is not here: it has two versions in glibc, and a name looked up at
 * the first call would give the newer one to a reference to the older. */
#define TAIL_FNS(X)                                                                          \
	X(_Znwm, void *, (size_t n), (n))                                                    \
	X(_Znam, void *, (size_t n), (n))                                                    \
	X(_ZnwmRKSt9nothrow_t, void *, (size_t n, const void *nt), (n, nt))                  \
	X(_ZnamRKSt9nothrow_t, void *, (size_t n, const void *nt), (n, nt))                  \
	X(_ZnwmSt11align_val_t, void *, (size_t n, size_t al), (n, al))                      \
	X(_ZnamSt11align_val_t, void *, (size_t n, size_t al), (n, al))                      \
	X(_ZnwmSt11align_val_tRKSt9nothrow_t, void *, (size_t n, size_t al, const void *nt), \
	  (n, al, nt))                                                                       \
	X(_ZnamSt11align_val_tRKSt9nothrow_t, void *, (size_t n, size_t al, const void *nt), \
	  (n, al, nt))                                                                       \
	X(wcsdup, wchar_t *, (const wchar_t *s), (s))                                        \
	X(__strdup, char *, (const char *s), (s))                                            \
	X(__strndup, char *, (const char *s, size_t n), (s, n))                              \
	X(vasprintf, int, (char **p, const char *f, va_list ap), (p, f, ap))                 \
	X(getline, ssize_t, (char **p, size_t *n, FILE *f), (p, n, f))                       \
	X(getdelim, ssize_t, (char **p, size_t *n, int d, FILE *f), (p, n, d, f))            \
	X(__getdelim, ssize_t, (char **p, size_t *n, int d, FILE *f), (p, n, d, f))          \
	X(canonicalize_file_name, char *, (const char *s), (s))                              \
	X(get_current_dir_name, char *, (void), ())                                          \
	X(getcwd, char *, (char *b, size_t n), (b, n))                                       \
	X(open_memstream, FILE *, (char **p, size_t *n), (p, n))                             \
	X(open_wmemstream, FILE *, (wchar_t **p, size_t *n), (p, n))                         \
	X(tempnam, char *, (const char *d, const char *p), (d, p))                           \
	X(scandir, int, (const char *d, void *l, void *s, void *c), (d, l, s, c))            \
	X(scandir64, int, (const char *d, void *l, void *s, void *c), (d, l, s, c))

enum {
#define TAIL_KEY(name, ret, params, args) K_##name,
	TAIL_FNS(TAIL_KEY)
#undef TAIL_KEY
	K_ASPRINTF, /* asprintf and __asprintf: variadic, they call vasprintf's real */
	K___ASPRINTF,
	K_N
};

static const char *const names[K_N] = {
#define TAIL_NAME(name, ret, params, args) #name,
	TAIL_FNS(TAIL_NAME)
#undef TAIL_NAME
	"asprintf", "__asprintf",
};

/* What each wrapper calls, once known; and for a reference bound lazily, an
 * address inside the object that holds it (whose dependencies have the function). */
static void *real[K_N];
static uintptr_t lazy_at[K_N];

static __attribute__((noinline)) void *tail_resolve(int k)
{
	const char *name = names[k];
	void *f = sm_global_symbol(name);
	if (!f) {
		uintptr_t at = __atomic_load_n(&lazy_at[k], __ATOMIC_ACQUIRE);
		Dl_info di;
		sm_thread.in_shim++;
		if (at && dladdr((void *)at, &di) && di.dli_fname) {
			void *h = dlopen(di.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
			if (h) {
				void *(*real_dlsym)(void *, const char *) =
					(void *(*)(void *, const char *))sm_dlopen_prehook(3, 0, 0);
				f = real_dlsym(h, name);
				dlclose(h);
			}
		}
		sm_thread.in_shim--;
	}
	if (!f)
		sm_die("no loaded object defines %s, which a tagged object calls", name);
	void *none = NULL;
	if (!__atomic_compare_exchange_n(&real[k], &none, f, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		f = none; /* another thread's, or sm_tail_bind's */
	return f;
}

static inline void *tail_real(int k)
{
	void *f = __atomic_load_n(&real[k], __ATOMIC_ACQUIRE);
	return f ? f : tail_resolve(k);
}

/* Called for a wrapper's frame by the unwinder (the wrappers name it as their
 * personality): in the cleanup phase the exception leaves the wrapper, and with
 * it the scope the wrapper began. Never a handler. */
static _Unwind_Reason_Code tail_personality(int version, _Unwind_Action actions,
					    _Unwind_Exception_Class cls,
					    struct _Unwind_Exception *ue,
					    struct _Unwind_Context *ctx)
{
	(void)cls;
	(void)ue;
	(void)ctx;
	if (version == 1 && (actions & _UA_CLEANUP_PHASE) && sm_thread.scope)
		sm_thread.scope--;
	return _URC_CONTINUE_UNWIND;
}

/* The personality's address, read through this pointer (the encoding 0x9b:
 * indirect, pc-relative, 4 bytes: what GCC emits for its own DW.ref pointers). */
__attribute__((used, visibility("hidden"))) void *const sm_tail_personality_ref =
	(void *)tail_personality;
#define TAIL_PERSONALITY() __asm__ volatile(".cfi_personality 0x9b, sm_tail_personality_ref")

/* noclone: GCC's only (clang does not clone functions that way). */
#ifdef __clang__
#define TAIL_NOCLONE
#else
#define TAIL_NOCLONE __attribute__((noclone))
#endif
#define TAIL_WRAPPER(name, ret, params, args)                                 \
	static __attribute__((noinline, used)) TAIL_NOCLONE ret tail_##name params \
	{                                                                      \
		ret (*fn_) params = (ret (*) params)tail_real(K_##name);       \
		TAIL_PERSONALITY();                                            \
		sm_thread.scope++;                                             \
		ret r = fn_ args;                                              \
		sm_thread.scope--;                                             \
		return r;                                                      \
	}
TAIL_FNS(TAIL_WRAPPER)
#undef TAIL_WRAPPER

static int tail_vprint(char **p, const char *fmt, va_list ap)
{
	int (*f)(char **, const char *, va_list) =
		(int (*)(char **, const char *, va_list))tail_real(K_vasprintf);
	TAIL_PERSONALITY();
	sm_thread.scope++;
	int r = f(p, fmt, ap);
	sm_thread.scope--;
	return r;
}

static __attribute__((noinline, used)) int tail_asprintf(char **p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = tail_vprint(p, fmt, ap);
	va_end(ap);
	return r;
}

const struct sm_tail_fn sm_tail_fns[K_N] = {
#define TAIL_ENTRY(name, ret, params, args) { #name, (void *)tail_##name },
	TAIL_FNS(TAIL_ENTRY)
#undef TAIL_ENTRY
	{ "asprintf", (void *)tail_asprintf },
	{ "__asprintf", (void *)tail_asprintf },
};
const size_t sm_tail_nfns = K_N;

static int key(const struct sm_tail_fn *fn)
{
	return (int)(fn - sm_tail_fns);
}

bool sm_tail_bind(const struct sm_tail_fn *fn, void *value)
{
	int k = key(fn);
	if (k == K_ASPRINTF || k == K___ASPRINTF) {
		/* their wrapper calls vasprintf: found at its first call */
		sm_tail_lazy(fn, 0);
		return true;
	}
	void *none = NULL;
	return __atomic_compare_exchange_n(&real[k], &none, value, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE) ||
	       none == value;
}

void sm_tail_lazy(const struct sm_tail_fn *fn, uintptr_t at)
{
	int k = key(fn);
	if (k == K_ASPRINTF || k == K___ASPRINTF)
		k = K_vasprintf;
	/* the latest object: the one most likely still loaded at the first call */
	if (at)
		__atomic_store_n(&lazy_at[k], at, __ATOMIC_RELEASE);
}
