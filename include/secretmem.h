/* SPDX-License-Identifier: MIT */
/*
 * secretmem.h: annotations for libsecretmem-preload.
 *
 * A program or library built with this header needs no link-time dependency: it
 * reaches the shim through weak references, so it runs unchanged, and these calls
 * do nothing, when the shim is not preloaded.
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

#ifdef __cplusplus
extern "C" {
#endif

extern void secretmem_impl_scope_begin(void) __attribute__((weak));
extern void secretmem_impl_scope_end(void) __attribute__((weak));
extern int secretmem_impl_is_secret(const void *p) __attribute__((weak));
extern int secretmem_impl_active(void) __attribute__((weak));
extern void secretmem_impl_annotated(void) __attribute__((weak));

static inline void secretmem_scope_begin(void)
{
	if (secretmem_impl_scope_begin)
		secretmem_impl_scope_begin();
}

static inline void secretmem_scope_end(void)
{
	if (secretmem_impl_scope_end)
		secretmem_impl_scope_end();
}

static inline int secretmem_is_secret(const void *p)
{
	return secretmem_impl_is_secret ? secretmem_impl_is_secret(p) : 0;
}

static inline int secretmem_active(void)
{
	return secretmem_impl_active ? secretmem_impl_active() : 0;
}

/*
 * An ELF note (owner "secretmem", type 0x534d) in an allocated section, so the
 * linker places it in a PT_NOTE segment where the shim finds it, and a constructor
 * that tells the shim the moment the object is loaded (at start-up or by dlopen).
 */
#define SECRETMEM_NOTE_TYPE 0x534d
#define SECRETMEM_ANNOTATE_LIBRARY                                            \
	__asm__(".pushsection .note.secretmem,\"a\",%note\n"                  \
		".balign 4\n"                                                 \
		".long 10\n"          /* namesz: "secretmem\0" */             \
		".long 4\n"           /* descsz */                            \
		".long 0x534d\n"      /* type */                              \
		".asciz \"secretmem\"\n"                                      \
		".balign 4\n"                                                 \
		".long 1\n"           /* desc: annotation version */          \
		".balign 4\n"                                                 \
		".popsection\n");                                             \
	__attribute__((constructor, used)) static void                        \
	secretmem_annotated_object_(void)                                     \
	{                                                                     \
		if (secretmem_impl_annotated)                                 \
			secretmem_impl_annotated();                           \
	}                                                                     \
	extern int secretmem_annotation_needs_a_semicolon_

#ifdef __cplusplus
}
#endif

#endif
