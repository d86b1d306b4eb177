// SPDX-License-Identifier: MIT
//
// A C++17 workload for the transparency tests: every form of operator new and
// delete (plain, array, aligned, nothrow, sized), the standard containers, exceptions
// thrown and caught across functions, and four threads sharing a map under a mutex.
// Its output is deterministic, one line per check, and it exits 1 if a check fails.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

int failures;

void check(bool ok, const std::string &what)
{
	std::printf("%s %s\n", ok ? "ok" : "FAIL", what.c_str());
	if (!ok)
		failures++;
}

// Keeps the compiler from eliding an allocation whose result it can see through
// (C++14 allows that, and clang does it).
template <class T> T *escape(T *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

bool aligned(const void *p, std::size_t a)
{
	return (reinterpret_cast<std::uintptr_t>(p) & (a - 1)) == 0;
}

struct alignas(128) Wide {
	unsigned char bytes[200];
	explicit Wide(unsigned char v = 0) { std::memset(bytes, v, sizeof(bytes)); }
};

struct alignas(4096) Paged {
	int value = 42;
};

void test_new_delete()
{
	int *i = escape(new int(7));
	check(*i == 7, "new int");
	delete i;

	int *a = escape(new int[1000]);
	std::iota(a, a + 1000, 0);
	check(std::accumulate(a, a + 1000, 0L) == 499500L, "new int[1000]");
	delete[] a;

	std::string *s = escape(new std::string(1000, 'x'));
	check(s->size() == 1000 && (*s)[999] == 'x', "new std::string");
	delete s;

	int *n = escape(new (std::nothrow) int[10]());
	check(n && n[9] == 0, "new (nothrow) int[10] value-initialised");
	delete[] n;

	// Sized deallocation: GCC calls operator delete(void *, size_t) here.
	struct Sized { long v[7]; };
	Sized *z = escape(new Sized());
	check(z->v[6] == 0, "new of a 56-byte struct, sized delete");
	delete z;
}

void test_aligned_new()
{
	Wide *w = escape(new Wide(3));
	check(aligned(w, 128) && w->bytes[199] == 3, "new alignas(128) struct");
	delete w;

	Wide *ws = escape(new Wide[17]);
	bool ok = true;
	for (int k = 0; k < 17; k++)
		ok = ok && aligned(&ws[k], 128);
	check(ok, "new alignas(128) struct[17]");
	delete[] ws;

	Paged *p = escape(new Paged);
	check(aligned(p, 4096) && p->value == 42, "new alignas(4096) struct");
	delete p;

	Wide *nt = escape(new (std::nothrow) Wide(9));
	check(nt && aligned(nt, 128) && nt->bytes[0] == 9, "new (nothrow) alignas(128) struct");
	delete nt;

	std::vector<Wide> v;
	for (int k = 0; k < 50; k++)
		v.emplace_back(static_cast<unsigned char>(k));
	check(aligned(v.data(), 128) && v[49].bytes[5] == 49, "std::vector of alignas(128) structs");

	auto up = std::make_unique<Wide[]>(5);
	check(aligned(up.get(), 128), "std::make_unique<alignas(128) struct[]>");

	void *raw = escape(::operator new(300, std::align_val_t(256)));
	check(aligned(raw, 256), "operator new(300, align_val_t(256))");
	::operator delete(raw, std::align_val_t(256));
}

void test_containers()
{
	std::vector<std::string> words;
	for (int k = 0; k < 20000; k++)
		words.push_back("word" + std::to_string(k * 7919 % 20000));
	std::sort(words.begin(), words.end());
	check(words.front() == "word0" && words.back() == "word9999", "sort 20000 strings");

	std::map<std::string, int> counts;
	for (const auto &w : words)
		counts[w.substr(0, 5)]++;
	check(counts.size() == 10 && counts["word1"] == 11111 && counts["word2"] == 1111,
	      "std::map of prefixes");

	std::unordered_map<int, std::vector<int>> buckets;
	for (int k = 0; k < 50000; k++)
		buckets[k % 997].push_back(k);
	std::size_t total = 0;
	for (const auto &b : buckets)
		total += b.second.size();
	check(buckets.size() == 997 && total == 50000, "std::unordered_map of vectors");

	std::ostringstream out;
	for (int k = 0; k < 1000; k++)
		out << k << ',';
	std::string joined = out.str();
	check(joined.size() == 3890 && joined.compare(0, 6, "0,1,2,") == 0, "std::ostringstream");

	std::string grow;
	for (int k = 0; k < 100000; k++)
		grow += static_cast<char>('a' + k % 26);
	grow.shrink_to_fit();
	check(grow.size() == 100000 && grow[99999] == 'a' + 99999 % 26, "std::string growth");
}

struct ParseError : std::runtime_error {
	std::vector<std::string> context;
	ParseError(const std::string &msg, std::vector<std::string> ctx)
		: std::runtime_error(msg), context(std::move(ctx)) {}
};

int parse_digit(char c, int depth)
{
	if (c < '0' || c > '9')
		throw ParseError("not a digit: " + std::string(1, c),
				 std::vector<std::string>(static_cast<std::size_t>(depth), "frame"));
	return c - '0';
}

int parse_all(const std::string &s, int depth)
{
	if (depth > 0)
		return parse_all(s, depth - 1); // unwinding crosses these frames
	int sum = 0;
	for (char c : s)
		sum += parse_digit(c, static_cast<int>(s.size()));
	return sum;
}

void test_exceptions()
{
	int caught = 0, sum = 0;
	for (int k = 0; k < 500; k++) {
		std::string input = std::to_string(k * 31) + (k % 5 == 0 ? "x" : "");
		try {
			sum += parse_all(input, k % 10);
		} catch (const ParseError &e) {
			caught++;
			if (std::string(e.what()) != "not a digit: x" || e.context.size() != input.size())
				caught = -100000;
		}
	}
	check(caught == 100, "100 exceptions thrown and caught across frames");
	check(sum == 7204, "sum of the parsed digits");

	bool bad_alloc = false;
	try {
		std::vector<char> huge;
		huge.reserve(huge.max_size());
		escape(huge.data());
	} catch (const std::length_error &) {
		bad_alloc = true;
	} catch (const std::bad_alloc &) {
		bad_alloc = true;
	}
	check(bad_alloc, "impossible reserve throws");

	// More than any machine has (not a constant: compilers refuse such arrays).
	volatile std::size_t huge = static_cast<std::size_t>(1) << 62;
	bool thrown = false;
	try {
		// operator new must throw, not return NULL.
		auto p = std::make_unique<char[]>(huge);
		escape(p.get());
	} catch (const std::bad_alloc &) {
		thrown = true;
	}
	check(thrown, "new char[2^62] throws std::bad_alloc");

	char *nt = escape(new (std::nothrow) char[huge]);
	check(nt == nullptr, "new (nothrow) char[2^62] returns nullptr");
	delete[] nt;
}

void test_threads()
{
	std::map<int, std::string> shared;
	std::mutex lock;
	std::vector<std::thread> threads;
	for (int t = 0; t < 4; t++) {
		threads.emplace_back([t, &shared, &lock] {
			std::vector<std::unique_ptr<std::string>> mine;
			for (int k = 0; k < 20000; k++) {
				mine.push_back(std::make_unique<std::string>(
					std::to_string(t) + ":" + std::string(static_cast<std::size_t>(k % 64), 'v')));
				if (k % 3 == 0 && mine.size() > 1)
					mine.erase(mine.begin() + (k / 3) % static_cast<long>(mine.size()));
				std::lock_guard<std::mutex> g(lock);
				shared[t * 100000 + k] = *mine.back();
				if (k % 7 == 0)
					shared.erase(t * 100000 + k - 1);
			}
		});
	}
	for (auto &th : threads)
		th.join();
	std::uint64_t h = 1469598103934665603ULL;
	for (const auto &kv : shared) {
		h = (h ^ static_cast<std::uint64_t>(kv.first)) * 1099511628211ULL;
		for (char c : kv.second)
			h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
	}
	char buf[128];
	std::snprintf(buf, sizeof(buf), "4 threads: map of %zu entries, hash %016llx", shared.size(),
		      static_cast<unsigned long long>(h));
	std::printf("%s\n", buf);
	check(shared.size() == 4 * (20000 - 2857), "4 threads filled the shared map");
}

} // namespace

int main()
{
	test_new_delete();
	test_aligned_new();
	test_containers();
	test_exceptions();
	test_threads();
	std::printf("%s: %d failed\n", failures ? "FAILED" : "PASSED", failures);
	return failures ? 1 : 0;
}
