/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the ELF reader (src/elfsym.c), linked directly: the symbols of this
 * very program and of libc (by file, through /proc/self/maps, and from the loaded
 * image), then a small ELF file built here and damaged every way issue 12 lists:
 * section offsets and sizes whose sum wraps, sizes near 2^63, a string table
 * index out of range, names past the table's end, and the file truncated at every
 * length. The reader must report only what lies in the file, never fault. TAP.
 */
#define _GNU_SOURCE
#include "config.h"
#include "elfsym.h"
#include "symmatch.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"

struct seen {
	const char *want;
	uintptr_t lo, hi;
	int count, found;
};

static void look(void *ctx, const char *name, uintptr_t lo, uintptr_t hi)
{
	struct seen *s = ctx;
	s->count++;
	if (strlen(name) > 4096 || hi <= lo)
		abort(); /* the reader's promises */
	if (strcmp(name, s->want) == 0) {
		s->found = 1;
		s->lo = lo;
		s->hi = hi;
	}
}

/* A static function: in .symtab only. */
static __attribute__((noinline)) int only_in_symtab(int x)
{
	return x * 3 + 1;
}

struct find_ctx {
	const char *base;
	struct sm_elf_object o;
};

static int find(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	struct find_ctx *c = data;
	const char *n = info->dlpi_name ? info->dlpi_name : "";
	if ((c->base[0] == '\0' && n[0] == '\0') || (c->base[0] && strstr(n, c->base))) {
		c->o = (struct sm_elf_object){ info->dlpi_addr, n, info->dlpi_phdr, info->dlpi_phnum };
		return 1;
	}
	return 0;
}

static struct sm_elf_object object_of(const char *base)
{
	struct find_ctx c = { base, { 0 } };
	dl_iterate_phdr(find, &c);
	return c.o;
}

/* ---- a small ELF file: header, .symtab (3 symbols), .strtab, section headers ---- */

struct image {
	Elf64_Ehdr eh;
	Elf64_Sym sym[3];
	char str[32];
	Elf64_Shdr sh[3]; /* null, .symtab, .strtab */
};

static void build(struct image *im)
{
	memset(im, 0, sizeof(*im));
	memcpy(im->eh.e_ident, ELFMAG, SELFMAG);
	im->eh.e_ident[EI_CLASS] = ELFCLASS64;
	im->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	im->eh.e_type = ET_DYN;
	im->eh.e_shoff = offsetof(struct image, sh);
	im->eh.e_shentsize = sizeof(Elf64_Shdr);
	im->eh.e_shnum = 3;
	memcpy(im->str, "\0alpha\0beta", 11);
	im->sym[1] = (Elf64_Sym){ .st_name = 1, .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC),
				  .st_shndx = 1, .st_value = 0x1000, .st_size = 0x10 };
	im->sym[2] = (Elf64_Sym){ .st_name = 7, .st_info = ELF64_ST_INFO(STB_LOCAL, STT_FUNC),
				  .st_shndx = 1, .st_value = 0x2000, .st_size = 0x20 };
	im->sh[1] = (Elf64_Shdr){ .sh_type = SHT_SYMTAB, .sh_offset = offsetof(struct image, sym),
				  .sh_size = sizeof(im->sym), .sh_link = 2, .sh_entsize = sizeof(Elf64_Sym) };
	im->sh[2] = (Elf64_Shdr){ .sh_type = SHT_STRTAB, .sh_offset = offsetof(struct image, str),
				  .sh_size = sizeof(im->str) };
}

static int memfd_of(const void *p, size_t n)
{
	int fd = memfd_create("elfsym_test", MFD_CLOEXEC);
	if (fd < 0 || write(fd, p, n) != (ssize_t)n) {
		perror("memfd");
		exit(1);
	}
	return fd;
}

/* Reads the image; returns how many symbols were reported (-1: refused). */
static int count_syms(const struct image *im, size_t len, struct seen *s)
{
	int fd = memfd_of(im, len);
	bool r = sm_elf_read_fd(fd, 0x10000, look, s);
	close(fd);
	return r ? s->count : -1;
}

static void damaged(void)
{
	struct image im;
	build(&im);
	struct seen s = { "beta", 0, 0, 0, 0 };
	ok(count_syms(&im, sizeof(im), &s) == 2 && s.found && s.lo == 0x12000 && s.hi == 0x12020,
	   "the small file: both functions, at bias + st_value");

	static const struct { uint64_t off, size; const char *what; } bad[] = {
		{ 1ull << 63, (1ull << 63) + 0x100, "offset + size wraps to 0x100" },
		{ UINT64_MAX - 7, 16, "offset + size wraps by 8" },
		{ 0x40, (1ull << 63) - 1, "size near 2^63" },
		{ sizeof(struct image) - 8, 0x1000, "runs past the end" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int which = 1; which <= 2; which++) {
			build(&im);
			im.sh[which].sh_offset = bad[i].off;
			im.sh[which].sh_size = bad[i].size;
			s = (struct seen){ "alpha", 0, 0, 0, 0 };
			ok(count_syms(&im, sizeof(im), &s) == 0, "%s %s: skipped", which == 1 ? ".symtab" : ".strtab",
			   bad[i].what);
		}
	}
	build(&im);
	im.eh.e_shoff = UINT64_MAX - 0x20;
	s = (struct seen){ "alpha", 0, 0, 0, 0 };
	ok(count_syms(&im, sizeof(im), &s) == -1, "e_shoff + table size wraps: refused");
	build(&im);
	im.eh.e_shnum = 0; /* extended numbering with a huge count in section 0 */
	im.sh[0].sh_size = UINT64_MAX;
	s = (struct seen){ "alpha", 0, 0, 0, 0 };
	ok(count_syms(&im, sizeof(im), &s) == -1, "extended section count near 2^64: refused");
	build(&im);
	im.sh[1].sh_link = 7;
	s = (struct seen){ "alpha", 0, 0, 0, 0 };
	ok(count_syms(&im, sizeof(im), &s) == 0, "sh_link out of range: table skipped");
	build(&im);
	im.sh[1].sh_link = 1;
	s = (struct seen){ "alpha", 0, 0, 0, 0 };
	ok(count_syms(&im, sizeof(im), &s) == 0, "sh_link to itself: table skipped");
	build(&im);
	im.sym[1].st_name = 0xffffffff;
	im.sym[2].st_value = UINT64_MAX - 4; /* lo + size wraps */
	s = (struct seen){ "alpha", 0, 0, 0, 0 };
	ok(count_syms(&im, sizeof(im), &s) == 0, "st_name past the table, st_value + st_size wraps: skipped");
	build(&im);
	memset(im.str, 'x', sizeof(im.str)); /* no NUL at all */
	s = (struct seen){ "alpha", 0, 0, 0, 0 };
	count_syms(&im, sizeof(im), &s);
	ok(!s.found, "names without a terminating NUL end at the table's end");

	int faults = 0, full = 0;
	for (size_t len = 0; len <= sizeof(im); len++) {
		build(&im);
		s = (struct seen){ "beta", 0, 0, 0, 0 };
		int n = count_syms(&im, len, &s);
		faults += n > 2;
		full += n == 2;
	}
	ok(faults == 0 && full == 1, "truncated at every length: symbols only from a whole file (%d whole)", full);
}

/* sm_rule_key: the string every name a rule matches contains (the debug reader
 * skips a file whose DWARF strings hold none), and the names it matches hold it. */
static void rule_keys(void)
{
	static const struct {
		const char *rule, *key, *name; /* name: a mangled name the rule matches */
	} c[] = {
		{ "load_key", "load_key", "load_key.constprop.0" },
		{ "_ZN8KeyStore4loadEi", "_ZN8KeyStore4loadEi", "_ZN8KeyStore4loadEi" },
		{ "KeyStore::load", "load", "_ZN6crypto8KeyStore4loadEi" },
		{ "crypto :: KeyStore :: load(int)", "load", "_ZN6crypto8KeyStore4loadEi" },
		{ "Box::fill", "fill", "_ZN3BoxIiE4fillEv" },
		{ "make_key<int>", "make_key", "_Z8make_keyIiEPcv" },
		{ "ns::Box<std::pair<int, long>>::fill(int)", "fill", "_ZN2ns3BoxISt4pairIilEE4fillEi" },
		{ "ns::make<Box<int>>", "make", "_ZN2ns4makeI3BoxIiEEEvv" },
		{ "KeyStore::KeyStore", "KeyStore", "_ZN8KeyStoreC2Ev" },
		{ "KeyStore::~KeyStore", "KeyStore", "_ZN8KeyStoreD2Ev" },
		{ "load_text[abi:cxx11]", "load_text", "_Z9load_textB5cxx11i" },
		{ "text [abi:cxx11]", "text", "_ZN6crypto8KeyStore4textB5cxx11Ev" },
		{ "KeyStore::text[abi:cxx11]", "text", "_ZN6crypto8KeyStore4textB5cxx11Ev" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char key[64];
		bool got = sm_rule_key(c[i].rule, key, sizeof(key));
		ok(got && strcmp(key, c[i].key) == 0 && strstr(c[i].name, key),
		   "sm_rule_key(%s) is %s, which %s holds", c[i].rule, got ? key : "(none)", c[i].name);
	}
	char key[64];
	ok(!sm_rule_key("KeyStore::operator()", key, sizeof(key)) && !sm_rule_key("", key, sizeof(key)) &&
		   !sm_rule_key("load_key", key, 4),
	   "sm_rule_key: none for an operator, an empty rule, or a key that does not fit");
}

/* sm_symbol_matches on a qualified name as the debug reader makes it for a
 * function its debug information knows by its name alone. */
static void qualified_names(void)
{
	static const struct {
		const char *rule, *name;
		bool match;
	} c[] = {
		{ "crypto::hidden_key", "crypto::(anonymous namespace)::hidden_key", true },
		{ "crypto::(anonymous namespace)::hidden_key", "crypto::(anonymous namespace)::hidden_key", true },
		{ "hidden_key", "crypto::(anonymous namespace)::hidden_key", true },
		{ "Vault::open", "crypto::(anonymous namespace)::Vault::open", true },
		{ "Box::fill", "crypto::Box<int>::fill", true },
		{ "other::hidden_key", "crypto::(anonymous namespace)::hidden_key", false },
		{ "key", "crypto::hidden_key", false },
		{ "crypto::hidden", "crypto::hidden_key", false },
		{ "_ZN6crypto10hidden_keyEv", "crypto::hidden_key", false },
		/* a name the debug information gives: template arguments, with or
		 * without a namespace in them, are no part of a rule that has none */
		{ "tkey", "tkey<int>", true },
		{ "tkey", "tkey<other::Key>", true },
		{ "crypto::tkey", "crypto::(anonymous namespace)::tkey<int>", true },
		{ "tkey<int>", "tkey<long int>", false },
		/* destructors, by symbol too */
		{ "KeyStore::~KeyStore", "_ZN8KeyStoreD2Ev", true },
		{ "~KeyStore", "_ZN6crypto8KeyStoreD1Ev", true },
		{ "Other::~Other", "_ZN8KeyStoreD2Ev", false },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct sm_symbol ss = { .sym = c[i].name };
		ok(sm_symbol_matches(c[i].rule, &ss) == c[i].match, "rule %s %s %s", c[i].rule,
		   c[i].match ? "matches" : "does not match", c[i].name);
	}
}

int main(void)
{
	printf("# ELF reader unit test\n");
	struct sm_elf_object self = object_of("");
	struct seen s = { "only_in_symtab", 0, 0, 0, 0 };
	char path[4096];
	enum sm_elf_source src = sm_elf_for_each_func(&self, look, &s, path, sizeof(path));
	ok(src == SM_ELF_FILE && s.found && (uintptr_t)only_in_symtab - s.lo < s.hi - s.lo,
	   "the program itself: a static function from .symtab, at its loaded address");
	ok(path[0] == '/', "the program's file named by the kernel, absolute: %s", path);

	struct sm_elf_object libc = object_of("libc.so");
	/* libc's own malloc and a function no sanitizer intercepts */
	void *h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	uintptr_t real_malloc = h ? (uintptr_t)dlsym(h, "malloc") : 0;
	uintptr_t version = h ? (uintptr_t)dlsym(h, "gnu_get_libc_version") : 0;
	s = (struct seen){ "malloc", 0, 0, 0, 0 };
	ok(libc.phnum && sm_elf_for_each_func(&libc, look, &s, NULL, 0) == SM_ELF_FILE && s.found &&
		   s.lo == real_malloc,
	   "libc by file: malloc where the loader put it");
	s = (struct seen){ "malloc", 0, 0, 0, 0 };
	bool mem = sm_elf_read_memory(&libc, look, &s);
	ok(mem && s.found && s.lo == real_malloc,
	   "libc from its loaded image (.dynsym through its hash table): malloc, %d functions", s.count);
	ok(sm_object_base((void *)version) == libc.bias, "sm_object_base of a libc function is libc's bias");
	ok(!sm_elf_annotated(&libc), "libc carries no secretmem note");
	ok(sm_elf_mapped(&libc, version, 16, PF_R | PF_X) && !sm_elf_mapped(&libc, version, 16, PF_W) &&
		   !sm_elf_mapped(&libc, 0, 1, PF_R) && !sm_elf_mapped(&libc, UINTPTR_MAX - 4, 16, PF_R),
	   "sm_elf_mapped: libc's code is r-x; address 0 and a range that wraps are not in libc");
	ok(only_in_symtab(1) == 4, "(keeps the static function)");

	damaged();
	rule_keys();
	qualified_names();
	return tap_done();
}
