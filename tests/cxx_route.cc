// SPDX-License-Identifier: MIT
//
// cxx_route: C++ allocations (operator new, std::string, std::vector) inside a
// tagged function. make_secret_key has a mangled name (the test finds it with nm);
// make_secret_key_c is extern "C". plain_cxx is never tagged.
//
//   cxx_route mangled|c|plain [pause]
//   cxx_route forms      every form of new, inside make_forms_c
//   cxx_route oom N      new of N bytes inside make_huge_c: bad_alloc, nothrow, new_handler
//
// Prints "NAME secret=0|1 addr=0x..." for each of its three blocks; with "pause",
// also "PID n" first and "READY" last, then waits until killed.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <unistd.h>
#include <vector>

#include "secretmem.h"

#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

struct Key {
	char *raw;
	std::string text;
	std::vector<unsigned char> bytes;
};

__attribute__((noinline)) void make_secret_key(Key &k)
{
	k.raw = new char[64];
	std::strcpy(k.raw, "blk:new");
	k.text.assign("blk:string, long enough to leave the small-string buffer");
	k.bytes.assign(256, 0x5a);
	KEEP_FRAME();
}

extern "C" __attribute__((noinline)) void make_secret_key_c(Key *k)
{
	k->raw = new char[64];
	std::strcpy(k->raw, "blk:new");
	k->text.assign("blk:string, long enough to leave the small-string buffer");
	k->bytes.assign(256, 0x5a);
	KEEP_FRAME();
}

__attribute__((noinline)) void plain_cxx(Key &k)
{
	k.raw = new char[64];
	std::strcpy(k.raw, "blk:new");
	k.text.assign("blk:string, long enough to leave the small-string buffer");
	k.bytes.assign(256, 0x5a);
	KEEP_FRAME();
}

static void show(const char *what, const void *p)
{
	std::printf("%s secret=%d addr=%p\n", what, secretmem_is_secret(p), p);
}

struct alignas(256) Wide {
	unsigned char b[512];
};

struct Small {
	long v[3];
};

static void show_aligned(const char *what, const void *p, std::size_t align)
{
	std::printf("%s secret=%d aligned=%d\n", what, p ? secretmem_is_secret(p) : -1,
		    p && (std::uintptr_t)p % align == 0);
}

// Every form of operator new, each block released by the matching delete (the
// class types take the sized forms).
extern "C" __attribute__((noinline)) void make_forms_c(void)
{
	char *a = new char[100];
	Small *b = new Small();
	char *c = new (std::nothrow) char[100];
	Small *d = new (std::nothrow) Small();
	Wide *e = new Wide();
	Wide *f = new Wide[3];
	Wide *g = new (std::nothrow) Wide();
	Wide *h = new (std::nothrow) Wide[2];
	show_aligned("new[]", a, 16);
	show_aligned("new", b, 16);
	show_aligned("new[]-nothrow", c, 16);
	show_aligned("new-nothrow", d, 16);
	show_aligned("new-aligned", e, 256);
	show_aligned("new[]-aligned", f, 256);
	show_aligned("new-aligned-nothrow", g, 256);
	show_aligned("new[]-aligned-nothrow", h, 256);
	std::memset(f, 0x5a, 3 * sizeof(Wide));
	delete[] a;
	delete b;
	delete[] c;
	delete d;
	delete e;
	delete[] f;
	delete g;
	delete[] h;
	KEEP_FRAME();
}

static int handler_calls;

static void out_of_memory(void)
{
	if (++handler_calls == 2)
		std::set_new_handler(nullptr); // the next failure throws
}

// A new that secret memory cannot serve: std::bad_alloc, nullptr from the nothrow
// form, the new_handler called until it gives up; never ordinary memory instead.
extern "C" __attribute__((noinline)) void make_huge_c(std::size_t n)
{
	try {
		char *p = new char[n];
		std::printf("new[] succeeded secret=%d\n", secretmem_is_secret(p));
	} catch (const std::bad_alloc &) {
		std::printf("new[] threw bad_alloc\n");
	}
	char *q = new (std::nothrow) char[n];
	// the compiler must not see q unused: clang would drop the new and take it
	// to have succeeded
	__asm__ volatile("" : "+r"(q) : : "memory");
	std::printf("nothrow new[] %s\n", q ? "returned a block" : "returned nullptr");
	std::set_new_handler(out_of_memory);
	try {
		Wide *w = new Wide[n / sizeof(Wide)];
		std::printf("aligned new[] succeeded secret=%d\n", secretmem_is_secret(w));
	} catch (const std::bad_alloc &) {
		std::printf("aligned new[] threw bad_alloc after %d new_handler calls\n", handler_calls);
	}
	char *small = new char[32];
	std::printf("small new secret=%d\n", secretmem_is_secret(small));
	delete[] small;
	KEEP_FRAME();
}

int main(int argc, char **argv)
{
	std::string how = argc > 1 ? argv[1] : "mangled";
	if (how == "forms") {
		make_forms_c();
		return 0;
	}
	if (how == "oom") {
		make_huge_c(argc > 2 ? std::strtoul(argv[2], nullptr, 0) : 1 << 24);
		return 0;
	}
	bool wait = argc > 2 && std::string(argv[2]) == "pause";
	Key k;
	if (how == "mangled")
		make_secret_key(k);
	else if (how == "c")
		make_secret_key_c(&k);
	else
		plain_cxx(k);
	if (wait)
		std::printf("PID %d\n", (int)getpid());
	show("new", k.raw);
	show("string", k.text.data());
	show("vector", k.bytes.data());
	if (wait) {
		std::printf("READY\n");
		std::fflush(stdout);
		for (;;)
			pause();
	}
	delete[] k.raw;
	return 0;
}
