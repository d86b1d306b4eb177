/* SPDX-License-Identifier: MIT */
/*
 * CRYPTO_set_mem_functions: a program that gives OpenSSL its own allocation
 * functions (stunnel; any program that counts or tracks OpenSSL's memory) has
 * libcrypto allocate through them, so every block libcrypto asks for is
 * allocated by the program's code, one frame below libcrypto: with
 * SECRETMEM_LIBS=libcrypto.so* none of them was secret, and nothing said so (a
 * hook that only tail-calls malloc was caught, one that did anything more was
 * not). The shim passes the call on and, when OpenSSL took the functions, makes
 * the malloc and realloc functions allocation machinery to look through, as
 * SECRETMEM_WRAPPERS would: their blocks count as their caller's, CRYPTO_malloc
 * in libcrypto. A function in an object a rule tags already is left alone.
 *
 * Its extent comes from its object's unwind table (the FDE that covers it), so a
 * stripped program's static function is found too. Not on aarch64 (the shim's
 * own unwinder is x86_64 only): there the rule must name the program too.
 */
#include "config.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

#include "guard.h"
#include "log.h"
#include "route.h"

#define SM_EXPORT __attribute__((visibility("default")))
#define in_shim sm_thread.in_shim

typedef void (*any_fn)(void);
typedef int (*set_fn)(any_fn, any_fn, any_fn);

SM_EXPORT int CRYPTO_set_mem_functions(any_fn m, any_fn r, any_fn f);

/* The path of the first loaded libcrypto (by file name), for a caller that
 * reaches none through its scope. */
static int find_libcrypto(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	const char *n = info->dlpi_name ? info->dlpi_name : "", *b = strrchr(n, '/');
	b = b ? b + 1 : n;
	if (strncmp(b, "libcrypto.so", 12) != 0 || strlen(n) >= PATH_MAX)
		return 0;
	strcpy(data, n);
	return 1;
}

/* The caller's libcrypto: the one in the caller's own scope (two copies: the
 * caller's), else the next in the global scope, else the one loaded at all (a
 * plugin opened RTLD_LOCAL that links libcrypto, whose call the compiler made a
 * tail call: the return address is its caller's). Called once or so a process:
 * no cache. */
static set_fn real_set(void *ra)
{
	static const char name[] = "CRYPTO_set_mem_functions";
	set_fn s = NULL;
	in_shim++;
	struct dl_find_object fo;
	if (_dl_find_object(ra, &fo) == 0 && fo.dlfo_link_map)
		s = (set_fn)dlsym(fo.dlfo_link_map, name);
	if (!s || s == CRYPTO_set_mem_functions) /* the main program's scope has the shim */
		s = (set_fn)dlsym(RTLD_NEXT, name);
	if (!s) {
		char path[PATH_MAX] = "";
		dl_iterate_phdr(find_libcrypto, path);
		void *h = path[0] ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
		if (h) {
			s = (set_fn)dlsym(h, name);
			dlclose(h); /* NOLOAD took a reference; it stays loaded */
		}
	}
	in_shim--;
	return s == CRYPTO_set_mem_functions ? NULL : s;
}

SM_EXPORT int CRYPTO_set_mem_functions(any_fn m, any_fn r, any_fn f)
{
	set_fn s = real_set(__builtin_return_address(0));
	if (!s)
		return 0; /* no libcrypto: OpenSSL takes nothing */
	int took = s(m, r, f);
	if (took) {
		in_shim++;
		int a = m ? sm_route_look_through((uintptr_t)m) : 1;
		int b = r ? sm_route_look_through((uintptr_t)r) : 1;
		in_shim--;
		if (a == 0 || b == 0)
			sm_warn("the program gave OpenSSL its own allocation functions "
				"(CRYPTO_set_mem_functions) and their extent is not known: what "
				"libcrypto allocates through them counts as the program's; name "
				"the program in SECRETMEM_LIBS too, or set SECRETMEM_DEPTH=1");
	}
	return took;
}
