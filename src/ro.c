/* SPDX-License-Identifier: MIT */
/*
 * The read-only section (ro.h): its bounds come from the linker (__start_sm_ro,
 * __stop_sm_ro, defined for any section whose name is a C identifier). Every
 * object in it is page-aligned and a whole number of pages long, so its bounds are
 * page boundaries and mprotect covers it and nothing else. Never calls malloc.
 */
#include "config.h"
#include "ro.h"
#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

extern unsigned char __start_sm_ro[] __attribute__((visibility("hidden")));
extern unsigned char __stop_sm_ro[] __attribute__((visibility("hidden")));

/* [p, p+len) read-only, whole pages; what says so in the debug log. */
bool sm_ro_seal_range(void *p, size_t len, const char *what)
{
	if (!len || ((uintptr_t)p | len) % SM_RO_PAGE)
		sm_die("the read-only section is not whole pages (%p, %zu bytes)", p, len);
	if (mprotect(p, len, PROT_READ) != 0) {
		/* strerror may allocate (translations); the name of the error never does. */
		const char *e = strerrorname_np(errno);
		sm_warn("cannot make its own state read-only (mprotect: %s); running on without that protection",
			e ? e : "unexpected error");
		return false;
	}
	sm_debug("%s read-only: %zu bytes at %p", what, len, p);
	return true;
}

bool sm_ro_seal(void)
{
	return sm_ro_seal_range(__start_sm_ro, (size_t)(__stop_sm_ro - __start_sm_ro), "its own state is");
}
