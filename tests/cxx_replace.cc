// SPDX-License-Identifier: MIT
//
// cxx_replace: a program that replaces the global operator new and delete (as
// allocation trackers and custom allocators do). Under the shim its own operators
// must still be the ones called: the executable comes first in symbol lookup.
//
//   cxx_replace    prints "replacement new N delete N secret S" (S: blocks secret)
#include <cstdio>
#include <cstdlib>
#include <new>

#include "secretmem.h"

static int news, deletes;

__attribute__((noinline)) void *operator new(std::size_t n)
{
	news++;
	if (void *p = std::malloc(n ? n : 1))
		return p;
	throw std::bad_alloc();
}

void operator delete(void *p) noexcept
{
	if (p)
		deletes++;
	std::free(p);
}

void operator delete(void *p, std::size_t) noexcept
{
	operator delete(p);
}

int main()
{
	int secret = 0;
	for (int i = 0; i < 10; i++) {
		long *p = new long(i);
		secret += secretmem_is_secret(p);
		delete p;
	}
	std::printf("replacement new %d delete %d secret %d\n", news, deletes, secret);
	return 0;
}
