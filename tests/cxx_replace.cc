// SPDX-License-Identifier: MIT
//
// cxx_replace: a program that replaces only the two basic operators, operator
// new(size_t) and operator delete(void *), with a size-tracking allocator that keeps
// a header in front of each block, as the standard allows. The C++ runtime's other
// forms (new[], nothrow, sized delete) then come to these two. Under the shim they
// still must: a form served elsewhere would hand out or free a block without its
// header and corrupt the heap.
//
//   cxx_replace    prints "replacement new N delete N live L secret S ordinary-secret O"
//                  (S: blocks of the replacement's that are secret; O: of 50 plain
//                  mallocs from main afterwards, those that are secret, always 0)
//
// Built three ways: whole (the operators in the program); with -DOPERATORS_ONLY as
// a shared library the program links (libcxxrepl.so); with -DMAIN_ONLY as that
// program (cxx_replace_linked).
#include <cstdio>
#include <cstdlib>
#include <new>

#include "secretmem.h"

extern "C" int repl_counts(int *news, int *deletes, long *live);

#ifndef MAIN_ONLY
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

extern "C" int repl_counts(int *n, int *d, long *l)
{
	*n = news, *d = deletes, *l = live;
	return secret;
}
#endif

#ifndef OPERATORS_ONLY
struct Obj {
	long v[4];
};

int main()
{
	for (int i = 0; i < 3; i++) {
		Obj *a = new Obj();              // new, sized delete
		int *b = new int[10];            // new[], delete[]
		Obj *c = new (std::nothrow) Obj; // nothrow new
		__asm__ volatile("" : : "r"(a), "r"(b), "r"(c) : "memory"); // no new/delete elision
		delete a;
		delete[] b;
		delete c;
	}
	int ordinary_secret = 0;
	void *plain[50];
	for (int i = 0; i < 50; i++)
		ordinary_secret += secretmem_is_secret(plain[i] = std::malloc(32));
	for (int i = 0; i < 50; i++)
		std::free(plain[i]);
	int n, d;
	long l;
	int s = repl_counts(&n, &d, &l);
	std::printf("replacement new %d delete %d live %ld secret %d ordinary-secret %d\n", n, d, l, s,
		    ordinary_secret);
	return 0;
}
#endif
