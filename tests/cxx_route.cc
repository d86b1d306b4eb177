// SPDX-License-Identifier: MIT
//
// cxx_route: C++ allocations (operator new, std::string, std::vector) inside a
// tagged function. make_secret_key has a mangled name (the test finds it with nm);
// make_secret_key_c is extern "C". plain_cxx is never tagged.
//
//   cxx_route mangled|c|plain [pause]
//
// Prints "NAME secret=0|1 addr=0x..." for each of its three blocks; with "pause",
// also "PID n" first and "READY" last, then waits until killed.
#include <cstdio>
#include <cstring>
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

int main(int argc, char **argv)
{
	std::string how = argc > 1 ? argv[1] : "mangled";
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
