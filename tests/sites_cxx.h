// SPDX-License-Identifier: MIT
#include <string>
#include <vector>

namespace crypto {
struct KeyStore {
	char *load(int n);
	char *load(const char *name, int n);
	char *save(int n);
	std::string load_text(int n); // returns a std::string: an [abi:cxx11] tag
	char *operator()(int n);
};
template <class T> struct Box {
	char *fill(int n);
};
char *call_hidden(int n);	  // calls a function of an anonymous namespace
char *call_inlined_hidden(int n); // and one the compiler inlines
char *binary_operator(); // a name that ends in "operator", no parameters
char *call_static_key(int n); // calls crypto::static_key, inlined
char *call_vault_key(int n);  // crypto::(anonymous namespace)::Vault::open_key, inlined
char *call_deep_key(int n);   // crypto::inner::(anonymous namespace)::deep_key, inlined
char *call_tmpl_key(int n);   // crypto::(anonymous namespace)::tkey<int>, inlined
char *call_dtor_key(int n);   // crypto::(anonymous namespace)::Guard::~Guard, inlined
char *call_c_key(int n);      // extern "C" c_key, inlined
} // namespace crypto

namespace other {
struct KeyStore {
	char *load(int n);
};
} // namespace other

std::vector<char> *make_key_vector(int n);

// Inlined where it is called (sites_cxx_main.cc), so only the debug information
// knows it: returning a std::string, it is inline_text[abi:cxx11](int).
inline std::string inline_text(int n)
{
	std::string t("blk:inline_text");
	t.resize(static_cast<size_t>(n), '\0'); // past the small-string buffer
	return t;
}
