// SPDX-License-Identifier: MIT
// The C++ functions sites.bats names by their demangled names: two overloads of
// crypto::KeyStore::load, a same-named method in another namespace, a method no
// rule names, and a free function filling a std::vector. Compiled apart from
// their callers (sites_cxx_main.cc), -O2 -g, as a distribution would.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "sites_cxx.h"

static char *block(const char *tag)
{
	char *p = static_cast<char *>(std::malloc(64));
	if (p)
		std::snprintf(p, 64, "blk:%s", tag);
	return p;
}

namespace crypto {
char *KeyStore::load(int) { return block("load_int"); }
char *KeyStore::load(const char *, int) { return block("load_str"); }
char *KeyStore::save(int) { return block("save"); }
std::string KeyStore::load_text(int n)
{
	std::string t("blk:load_text");
	t.resize(static_cast<size_t>(n), '\0'); // past the small-string buffer
	return t;
}
char *KeyStore::operator()(int) { return block("call_op"); }
template <class T> char *Box<T>::fill(int) { return block("box_fill"); }
template struct Box<int>;
namespace {
char *hidden_key(int) { return block("hidden_key"); }
char *inlined_hidden(int) { return block("inlined_hidden"); } // called once: inlined
} // namespace
// hidden_key reached through a table, as a callback is: its address escapes, so it
// keeps a copy of its own
char *(*key_makers[])(int) = { hidden_key };
char *call_hidden(int n) { return key_makers[0](n); }
char *call_inlined_hidden(int n) { return inlined_hidden(n); }
char *binary_operator() { return block("binary_operator"); }
// Called once each, so inlined, and known to GCC's debug information by their
// names alone (no linkage name): a static function, a method of a class of an
// anonymous namespace defined outside it, a function of a nested namespace.
static char *static_key(int) { return block("static_key"); }
char *call_static_key(int n) { return static_key(n); }
namespace {
struct Vault {
	char *open_key(int);
};
char *Vault::open_key(int) { return block("vault_key"); }
} // namespace
char *call_vault_key(int n) { return Vault().open_key(n); }
namespace inner {
namespace {
char *deep_key(int) { return block("deep_key"); }
} // namespace
} // namespace inner
char *call_deep_key(int n) { return inner::deep_key(n); }
// GCC names these tkey<int> and ~Guard, with no linkage name
namespace {
template <class T> char *tkey(T) { return block("tmpl_key"); }
char *guarded;
struct Guard {
	~Guard() { guarded = block("dtor_key"); }
};
} // namespace
char *call_tmpl_key(int n) { return tkey<int>(n); }
char *call_dtor_key(int) { { Guard g; } return guarded; }
// C linkage: its name is c_key, wherever it is declared (and GCC gives it no
// linkage name either); inlined here, and kept for callers elsewhere
extern "C" char *c_key(int) { return block("c_key"); }
char *call_c_key(int n) { return c_key(n); }
} // namespace crypto

namespace other {
char *KeyStore::load(int) { return block("other_load"); }
} // namespace other

std::vector<char> *make_key_vector(int n)
{
	auto *v = new std::vector<char>(static_cast<size_t>(n), 'k');
	std::snprintf(v->data(), v->size(), "blk:make_key_vector");
	return v;
}
