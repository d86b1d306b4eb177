// SPDX-License-Identifier: MIT
// A C++ plugin that needs nothing from the C++ runtime (its NEEDED list, with
// --as-needed, has no libstdc++): loaded by a C program (cxx_host), no demangler
// is in the process, and SECRETMEM_SITES=vault::Box::open must still match.
#include <cstdio>
#include <cstdlib>

#include "secretmem.h"

namespace vault {
struct Box {
	char *open(int n);
};
} // namespace vault

char *vault::Box::open(int n)
{
	char *p = static_cast<char *>(std::malloc(static_cast<size_t>(n)));
	if (p)
		std::snprintf(p, static_cast<size_t>(n), "blk:open");
	return p;
}

extern "C" int plugin_run(void)
{
	vault::Box b;
	char *p = b.open(64);
	std::printf("open secret=%d addr=%p\n", secretmem_is_secret(p), static_cast<void *>(p));
	return 0;
}
