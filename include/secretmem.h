/* SPDX-License-Identifier: MIT */
/*
 * secretmem.h: annotations for libsecretmem-preload.
 *
 * A program or library built with this header needs no link-time dependency: it
 * reaches the shim through weak references, so it runs unchanged, and these calls
 * do nothing, when the shim is not preloaded. (Where the linker settled a weak
 * reference to 0, as in an executable built with -no-pie -fno-pic, the entry point
 * is looked up once at run time with dlsym instead.)
 *
 *   SECRETMEM_ANNOTATE_LIBRARY;      at file scope, once per object: every allocation
 *                                    made by this library or program is secret
 *   secretmem_scope_begin();         every allocation of this thread from here...
 *   secretmem_scope_end();           ...to here is secret (nestable)
 *   secretmem_is_secret(p)           1 if p lies in secret memory, else 0
 *   secretmem_active()               1 if the shim is loaded and not switched off
 *
 * See secretmem.h(3).
 */
#ifndef SECRETMEM_H
#define SECRETMEM_H

#include <dlfcn.h>

#ifdef __cplusplus
extern "C" {
#endif

extern void secretmem_impl_scope_begin(void) __attribute__((weak));
extern void secretmem_impl_scope_end(void) __attribute__((weak));
extern int secretmem_impl_is_secret(const void *p) __attribute__((weak));
extern int secretmem_impl_active(void) __attribute__((weak));
extern void secretmem_impl_annotated(void) __attribute__((weak));


/* The shim's entry point NAME: the weak reference. Only code built without -fpic
 * or -fpie can have it settled to 0 at link time (a -no-pie executable): there the
 * entry point is looked up once at run time with dlsym instead, so the first call
 * of each function in such code is not async-signal-safe. Code built as PIC or PIE
 * (every shared library, and executables by default) never calls dlsym here. */
static inline void *secretmem_impl_find_(void *weak, const char *name, void **cache)
{
#if defined(__PIC__) || defined(__PIE__)
	(void)name;
	(void)cache;
	return weak;
#else
	if (weak)
		return weak;
	void *f = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
	if (!f) {
		f = dlsym((void *)0 /* RTLD_DEFAULT */, name);
		__atomic_store_n(cache, f ? f : (void *)cache, __ATOMIC_RELEASE);
	}
	return f == (void *)cache ? (void *)0 : f;
#endif
}

#define SECRETMEM_IMPL_(type, name)                                           \
	__extension__({                                                       \
		static void *secretmem_cache_;                                \
		(type)secretmem_impl_find_((void *)name, #name, &secretmem_cache_); \
	})

static inline void secretmem_scope_begin(void)
{
	void (*f)(void) = SECRETMEM_IMPL_(void (*)(void), secretmem_impl_scope_begin);
	if (f)
		f();
}

static inline void secretmem_scope_end(void)
{
	void (*f)(void) = SECRETMEM_IMPL_(void (*)(void), secretmem_impl_scope_end);
	if (f)
		f();
}

static inline int secretmem_is_secret(const void *p)
{
	int (*f)(const void *) = SECRETMEM_IMPL_(int (*)(const void *), secretmem_impl_is_secret);
	return f ? f(p) : 0;
}

static inline int secretmem_active(void)
{
	int (*f)(void) = SECRETMEM_IMPL_(int (*)(void), secretmem_impl_active);
	return f ? f() : 0;
}

/*
 * An ELF note (owner "secretmem", type 0x534d) in an allocated section, so the
 * linker places it in a PT_NOTE segment where the shim finds it, and a call that
 * tells the shim the moment the object is loaded (at start-up or by dlopen), before
 * any of the object's constructors run: from the object's DT_INIT function (_init,
 * which the loader runs before the constructors of .init_array, whatever their
 * priority), with a constructor as well for objects linked without _init
 * (-nostartfiles). The first of the two to run tells the shim.
 */
#if defined(__x86_64__)
#define SECRETMEM_INIT_CALL_ "call secretmem_annotated_init_\n"
#elif defined(__aarch64__)
#define SECRETMEM_INIT_CALL_ "bl secretmem_annotated_init_\n"
#else
#define SECRETMEM_INIT_CALL_ ""
#endif
#ifdef __cplusplus
#define SECRETMEM_EXTERN_C_ extern "C"
#else
#define SECRETMEM_EXTERN_C_
#endif
#define SECRETMEM_NOTE_TYPE 0x534d
#define SECRETMEM_STR_(x) #x
#define SECRETMEM_XSTR_(x) SECRETMEM_STR_(x)
#define SECRETMEM_ANNOTATE_LIBRARY                                            \
	__asm__(".pushsection .note.secretmem,\"a\",%note\n"                  \
		".balign 4\n"                                                 \
		".long 10\n"          /* namesz: "secretmem\0" */             \
		".long 4\n"           /* descsz */                            \
		".long " SECRETMEM_XSTR_(SECRETMEM_NOTE_TYPE) "\n" /* type */     \
		".asciz \"secretmem\"\n"                                      \
		".balign 4\n"                                                 \
		".long 1\n"           /* desc: annotation version */          \
		".balign 4\n"                                                 \
		".popsection\n"                                               \
		".pushsection .init,\"ax\",%progbits\n"                       \
		SECRETMEM_INIT_CALL_                                          \
		".popsection\n");                                             \
	/* Hidden, and weak so that a second use in the same object links. */ \
	SECRETMEM_EXTERN_C_ __attribute__((weak, visibility("hidden"), used)) \
	void secretmem_annotated_init_(void)                                  \
	{                                                                     \
		static int told_;                                             \
		void (*f)(void) = SECRETMEM_IMPL_(void (*)(void),             \
						  secretmem_impl_annotated);  \
		if (__atomic_exchange_n(&told_, 1, __ATOMIC_ACQ_REL))          \
			return;                                               \
		if (f)                                                        \
			f();                                                  \
	}                                                                     \
	__attribute__((constructor, used)) static void                        \
	secretmem_annotated_object_(void)                                     \
	{                                                                     \
		secretmem_annotated_init_();                                  \
	}                                                                     \
	extern int secretmem_annotation_needs_a_semicolon_

#ifdef __cplusplus
}
#endif

#endif
