// SPDX-License-Identifier: MIT
#include <vector>

namespace crypto {
struct KeyStore {
	char *load(int n);
	char *load(const char *name, int n);
	char *save(int n);
};
} // namespace crypto

namespace other {
struct KeyStore {
	char *load(int n);
};
} // namespace other

std::vector<char> *make_key_vector(int n);
