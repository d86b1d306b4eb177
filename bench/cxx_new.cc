// SPDX-License-Identifier: MIT
// operator new and delete called out of line, for route_bench.
#include <cstddef>
#include <new>
extern "C" void *cxx_new(std::size_t n) { return ::operator new(n); }
extern "C" void cxx_delete(void *p) { ::operator delete(p); }
