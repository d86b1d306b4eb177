// SPDX-License-Identifier: MIT
//
// cxx_replace: a program that replaces only the two basic operators, operator
// new(size_t) and operator delete(void *), with a size-tracking allocator that keeps
// a header in front of each block, as the standard allows. The C++ runtime's other
// forms (new[], nothrow, sized delete) then come to these two. Under the shim they
// still must: a form served elsewhere would hand out or free a block without its
// header and corrupt the heap.
//
//   cxx_replace    prints "replacement new N delete N live L secret S" (S: blocks secret)
#include <cstdio>
#include <cstdlib>
#include <new>

#include "secretmem.h"

static int news, deletes, secret;
static long live;

__attribute__((noinline)) void *operator new(std::size_t n)
{
	std::size_t *h = static_cast<std::size_t *>(std::malloc(n + 16));
	if (!h)
		throw std::bad_alloc();
	news++;
	secret += secretmem_is_secret(h);
	h[0] = n;
	live += (long)n;
	return h + 2;
}

void operator delete(void *p) noexcept
{
	if (!p)
		return;
	std::size_t *h = static_cast<std::size_t *>(p) - 2;
	deletes++;
	live -= (long)h[0];
	std::free(h);
}

struct Obj {
	long v[4];
};

int main()
{
	for (int i = 0; i < 3; i++) {
		Obj *a = new Obj();              // new, sized delete
		int *b = new int[10];            // new[], delete[]
		Obj *c = new (std::nothrow) Obj; // nothrow new
		delete a;
		delete[] b;
		delete c;
	}
	std::printf("replacement new %d delete %d live %ld secret %d\n", news, deletes, live, secret);
	return 0;
}
