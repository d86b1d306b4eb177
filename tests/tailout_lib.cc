// SPDX-License-Identifier: MIT
// libtailout.so: a tagged C++ library whose allocation functions end in a tail call
// into the C++ runtime (tests/tailout.bats): ::operator new in its forms and
// std::allocator, each a jump at -O2, so operator new returns straight into the
// caller (tailout_prog). to_new_catch catches what to_new throws.
#include <cstddef>
#include <memory>
#include <new>

extern "C" {
void *to_new(std::size_t n) { return ::operator new(n); }
void *to_newarr(std::size_t n) { return ::operator new[](n); }
void *to_newal(std::size_t n) { return ::operator new(n, std::align_val_t(64)); }
void *to_newnt(std::size_t n) { return ::operator new(n, std::nothrow); }
void *to_newalnt(std::size_t n) { return ::operator new[](n, std::align_val_t(64), std::nothrow); }
void *to_allocstd(std::size_t n) { return std::allocator<unsigned char>().allocate(n); }
void to_delete(void *p) { ::operator delete(p); }

// 1 when to_new(n) threw bad_alloc
int to_new_catch(std::size_t n)
{
	try {
		void *volatile p = to_new(n);
		::operator delete(p);
	} catch (const std::bad_alloc &) {
		return 1;
	}
	return 0;
}
}
