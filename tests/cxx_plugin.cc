// SPDX-License-Identifier: MIT
//
// libcxxplugin.so: a C++ plugin that a C program (cxx_host) loads with RTLD_LOCAL,
// so that its C++ runtime is not in the global scope (Python extension modules,
// PAM modules and the like are loaded this way). plugin_run asks for more memory
// than there is and must get std::bad_alloc, and nullptr from the nothrow form.
#include <cstddef>
#include <cstdio>
#include <new>

#include "secretmem.h"

extern "C" int plugin_run(void)
{
	volatile std::size_t huge = (std::size_t)1 << 46; // 64 TiB
	try {
		char *p = new char[huge];
		std::printf("plugin: new[] returned %p\n", (void *)p);
		delete[] p;
	} catch (const std::bad_alloc &) {
		std::printf("plugin: new[] threw bad_alloc\n");
	}
	char *q = new (std::nothrow) char[huge];
	// the compiler must not see q unused: clang would drop the new and take it
	// to have succeeded
	__asm__ volatile("" : "+r"(q) : : "memory");
	std::printf("plugin: nothrow new[] %s\n", q ? "returned a block" : "returned nullptr");
	delete[] q;
	char *small = new char[32];
	std::printf("plugin: small new secret=%d\n", secretmem_is_secret(small));
	delete[] small;
	return 0;
}
