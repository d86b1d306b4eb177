// SPDX-License-Identifier: MIT
// sites_cxx [pause] CASE...: calls the functions of sites_cxx.cc and prints
// "NAME secret=0|1 addr=0x..." for each block, as sites_prog does.
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "secretmem.h"
#include "sites_cxx.h"

static void report(const char *name, const void *p)
{
	std::printf("%s secret=%d addr=%p\n", name, secretmem_is_secret(p), p);
}

int main(int argc, char **argv)
{
	bool pause_at_end = argc > 1 && std::strcmp(argv[1], "pause") == 0;
	std::setvbuf(stdout, nullptr, _IOLBF, 0);
	if (pause_at_end)
		std::printf("PID %d\n", static_cast<int>(getpid()));
	crypto::KeyStore ks;
	other::KeyStore os;
	for (int i = 1 + pause_at_end; i < argc; i++) {
		const char *c = argv[i];
		if (!std::strcmp(c, "load_int"))
			report(c, ks.load(64));
		else if (!std::strcmp(c, "load_str"))
			report(c, ks.load("k", 64));
		else if (!std::strcmp(c, "save"))
			report(c, ks.save(64));
		else if (!std::strcmp(c, "other_load"))
			report(c, os.load(64));
		else if (!std::strcmp(c, "make_key_vector"))
			report(c, make_key_vector(64)->data());
		else if (!std::strcmp(c, "load_text")) {
			static std::string t; // past the small-string buffer: on the heap
			t = ks.load_text(64);
			report(c, t.data());
		} else if (!std::strcmp(c, "inline_text")) {
			static std::string t;
			t = inline_text(64);
			report(c, t.data());
		} else if (!std::strcmp(c, "call_op"))
			report(c, ks(64));
		else if (!std::strcmp(c, "box_fill"))
			report(c, crypto::Box<int>().fill(64));
		else if (!std::strcmp(c, "hidden_key"))
			report(c, crypto::call_hidden(64));
		else if (!std::strcmp(c, "inlined_hidden"))
			report(c, crypto::call_inlined_hidden(64));
		else if (!std::strcmp(c, "binary_operator"))
			report(c, crypto::binary_operator());
		else if (!std::strcmp(c, "static_key"))
			report(c, crypto::call_static_key(64));
		else if (!std::strcmp(c, "vault_key"))
			report(c, crypto::call_vault_key(64));
		else if (!std::strcmp(c, "deep_key"))
			report(c, crypto::call_deep_key(64));
		else if (!std::strcmp(c, "tmpl_key"))
			report(c, crypto::call_tmpl_key(64));
		else if (!std::strcmp(c, "dtor_key"))
			report(c, crypto::call_dtor_key(64));
		else if (!std::strcmp(c, "c_key"))
			report(c, crypto::call_c_key(64));
		else {
			std::fprintf(stderr, "sites_cxx: unknown case %s\n", c);
			return 2;
		}
	}
	if (pause_at_end) {
		std::printf("READY\n");
		pause();
	}
	return 0;
}
