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
#include <stdint.h>

#include "guard.h"
#include "log.h"
#include "route.h"

#define SM_EXPORT __attribute__((visibility("default")))
#define in_shim sm_thread.in_shim

typedef void (*any_fn)(void);
typedef int (*set_fn)(any_fn, any_fn, any_fn);

SM_EXPORT int CRYPTO_set_mem_functions(any_fn m, any_fn r, any_fn f);

SM_EXPORT int CRYPTO_set_mem_functions(any_fn m, any_fn r, any_fn f)
{
	static set_fn real;
	set_fn s = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
	if (!s) {
		in_shim++;
		s = (set_fn)dlsym(RTLD_NEXT, "CRYPTO_set_mem_functions");
		in_shim--;
		if (!s)
			return 0; /* no libcrypto after the shim: OpenSSL takes nothing */
		__atomic_store_n(&real, s, __ATOMIC_RELEASE);
	}
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
