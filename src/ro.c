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

bool sm_ro_seal(void)
{
	size_t len = (size_t)(__stop_sm_ro - __start_sm_ro);
	if (!len || ((uintptr_t)__start_sm_ro | len) % SM_RO_PAGE)
		sm_die("the read-only section is not whole pages (%p, %zu bytes)", (void *)__start_sm_ro, len);
	if (mprotect(__start_sm_ro, len, PROT_READ) != 0) {
		/* strerror may allocate (translations); the name of the error never does. */
		const char *e = strerrorname_np(errno);
		sm_warn("cannot make its own state read-only (mprotect: %s); running on without that protection",
			e ? e : "unexpected error");
		return false;
	}
	sm_debug("its own state is read-only: %zu bytes at %p", len, (void *)__start_sm_ro);
	return true;
}
