// SPDX-License-Identifier: MIT
// run_keyd: the C++ key daemon of libsecretmem-preload(7)'s EXAMPLES. KeyStore::load
// (mangled _ZN8KeyStore4loadEv) reads secret.bin into a std::string and a new'd
// vector; built from two translation units (-DPART_MAIN for main) so that load keeps
// its frame at -O2. Prints "NAME secret=0|1" for both blocks (1: in a /secretmem
// mapping), then READY, then waits for a signal with the key still held.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>
#include <unistd.h>

struct KeyStore {
	std::string key;
	std::vector<unsigned char> *raw = nullptr;
	void load();
};

#ifdef PART_MAIN
static int in_secretmem(const void *p)
{
	FILE *f = std::fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;
	std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
	while (f && std::fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char path[256] = "";
		if (std::sscanf(line, "%lx-%lx %*s %*s %*s %*s %255s", &lo, &hi, path) >= 2 &&
		    a >= lo && a < hi) {
			found = std::strncmp(path, "/secretmem", 10) == 0;
			break;
		}
	}
	if (f)
		std::fclose(f);
	return found;
}

int main()
{
	KeyStore ks;
	ks.load();
	std::printf("key secret=%d\nraw secret=%d\nREADY\n", in_secretmem(ks.key.data()),
		    in_secretmem(ks.raw->data()));
	std::fflush(stdout);
	pause();
	delete ks.raw;
	return 0;
}
#else
void KeyStore::load()
{
	std::ifstream in("secret.bin", std::ios::binary);
	key.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
	if (key.size() < 32)
		key.resize(32, 'k'); // longer than the short-string buffer: on the heap
	raw = new std::vector<unsigned char>(key.begin(), key.end());
}
#endif
