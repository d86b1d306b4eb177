/* SPDX-License-Identifier: MIT */
/*
 * Routing (see route.h): the object table, symbol resolution of sites and wrappers,
 * the code-address cache and the stack walk.
 *
 * The object table is built from dl_iterate_phdr at start-up, rescanned after each
 * dlopen, dlmopen and dlclose, and extended when an address falls in no known
 * object (found with _dl_find_object: no allocation path takes the loader's
 * lock, see docs/attribution-loader.md). For each object
 * it keeps its address range, whether it is machinery, whether SECRETMEM_LIBS or
 * an annotation note makes all of it secret, and the address ranges of the
 * SECRETMEM_SITES and SECRETMEM_WRAPPERS functions it defines, read once from its
 * .dynsym and .symtab on disk. Only cache misses take the table's lock.
 *
 * Never calls malloc itself; anything fnmatch, dlinfo or the unwinder allocate
 * goes to the next allocator because preload.c holds the re-entry guard.
 */
#include "config.h"
#include "route.h"
#include "frames.h"
#include "log.h"
#include "meta.h"
#include "options.h"
#include "reloc.h"
#include "stats.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <gnu/libc-version.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unwind.h>


#ifndef SECRETMEM_NOTE_TYPE
#define SECRETMEM_NOTE_TYPE 0x534d
#endif

__thread union sm_thread sm_thread __attribute__((tls_model("initial-exec")));

/* In .bss: no page of it is touched unless routing runs. */
uint64_t sm_route_cache[1u << SM_CACHE_BITS];
uint64_t sm_route_tag;
uint64_t sm_route_fast_tag = UINT64_MAX;
static bool route_all; /* SECRETMEM_LIBS contains "*" */

static unsigned generation = 1; /* 1..32767, in bits 49-63 of a cache entry */

struct range {
	uintptr_t lo, hi;
	enum sm_class cls;      /* SM_SECRET (a site) or SM_MACHINERY (a wrapper) */
	const struct sm_site *rule;
};

struct object {
	uintptr_t lo, hi;       /* lowest and highest address of its PT_LOAD segments */
	uintptr_t bias;         /* dlpi_addr */
	const char *path;
	enum sm_class cls;      /* of every address outside its ranges */
	struct range *ranges;
	size_t nranges;
	bool present;           /* seen by the latest dl_iterate_phdr */
};

#define MAX_OBJECTS 4096
static struct object *objects;
static size_t nobjects;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

/* Objects whose every address is allocation machinery, by load bias. */
static uintptr_t libc_bias, ldso_bias, self_bias, unwind_bias;

static bool have_rules; /* SECRETMEM_LIBS or SECRETMEM_SITES given */

/* ---- rules ---- */

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static bool glob_matches(const char *glob, const char *path)
{
	return fnmatch(glob, path, 0) == 0 || fnmatch(glob, base_name(path), 0) == 0;
}

/* Whether the function named sym is the rule's function: the name itself, or a
 * part the compiler split off it (load_key.cold, load_key.part.0, .constprop.N). */
static bool func_matches(const char *func, const char *sym)
{
	size_t n = strlen(func);
	return strncmp(func, sym, n) == 0 && (sym[n] == '\0' || sym[n] == '.');
}

/* ---- symbols ---- */

struct rangebuf {
	struct range *r;
	size_t n, cap;
};

static void add_range(struct rangebuf *b, uintptr_t lo, uintptr_t hi, enum sm_class cls,
		      const struct sm_site *rule)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct range *r = sm_meta_alloc(cap * sizeof(*r));
		if (!r)
			return;
		if (b->n)
			memcpy(r, b->r, b->n * sizeof(*r));
		b->r = r; /* the old array stays in metadata memory, unused */
		b->cap = cap;
	}
	b->r[b->n++] = (struct range){ lo, hi, cls, rule };
}

/* C++ standard library code instantiated into the object itself (std::vector's
 * _M_fill_assign, std::string's _M_construct): allocation machinery, like
 * libstdc++, so that a container filled in a tagged function counts as allocated
 * there. Mangled names in namespaces std and __gnu_cxx. */
/* The C++ runtimes, whose operator new calls malloc: libstdc++ (GCC), and libc++
 * with libc++abi (LLVM), which holds libc++'s operator new. */
static bool is_cxx_runtime(const char *base)
{
	return strncmp(base, "libstdc++.so", 12) == 0 || strncmp(base, "libc++.so", 9) == 0 ||
	       strncmp(base, "libc++abi.so", 12) == 0;
}

static bool is_std_code(const char *sym)
{
	static const char *const prefixes[] = {
		"_ZNSt", "_ZNKSt", "_ZSt", "_ZN9__gnu_cxx", "_ZNK9__gnu_cxx", "_ZNSa", "_ZNKSa",
	};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(sym, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static void match_rules(struct object *o, const char *sym, uintptr_t lo, uintptr_t hi,
			struct rangebuf *b)
{
	if (sym[0] == '_' && sym[1] == 'Z' && is_std_code(sym)) {
		add_range(b, lo, hi, SM_MACHINERY, NULL);
		return;
	}
	for (size_t i = 0; i < sm_opt.nsites; i++) {
		const struct sm_site *s = &sm_opt.sites[i];
		if (func_matches(s->func, sym) && (!s->lib || glob_matches(s->lib, o->path))) {
			add_range(b, lo, hi, SM_SECRET, s);
			sm_debug("SECRETMEM_SITES %s%s%s: %s at %p (%zu bytes) in %s",
				 s->lib ? s->lib : "", s->lib ? ":" : "", s->func, sym,
				 (void *)lo, (size_t)(hi - lo), o->path);
		}
	}
	for (size_t i = 0; i < sm_opt.nwrappers; i++) {
		const struct sm_site *s = &sm_opt.wrappers[i];
		if (func_matches(s->func, sym) && (!s->lib || glob_matches(s->lib, o->path))) {
			add_range(b, lo, hi, SM_MACHINERY, s);
			sm_debug("SECRETMEM_WRAPPERS %s: %s at %p in %s, looked through",
				 s->func, sym, (void *)lo, o->path);
		}
	}
}

typedef void (*func_fn)(void *ctx, const char *name, uintptr_t lo, uintptr_t hi);

/* Calls fn for every defined FUNC symbol of the ELF file (.symtab and .dynsym), at
 * its address once loaded with this bias. */
static void for_each_func(const char *file, uintptr_t bias, func_fn fn, void *ctx)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) || (size_t)st.st_size < sizeof(Elf64_Ehdr)) {
		close(fd);
		return;
	}
	size_t size = (size_t)st.st_size;
	const unsigned char *img = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (img == MAP_FAILED)
		return;

	const Elf64_Ehdr *eh = (const void *)img;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shoff == 0 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > size)
		goto out;

	const Elf64_Shdr *sh = (const void *)(img + eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM)
			continue;
		if (sh[i].sh_link >= eh->e_shnum)
			continue;
		const Elf64_Shdr *str = &sh[sh[i].sh_link];
		if (sh[i].sh_offset + sh[i].sh_size > size || str->sh_offset + str->sh_size > size)
			continue;
		const Elf64_Sym *sym = (const void *)(img + sh[i].sh_offset);
		const char *names = (const char *)img + str->sh_offset;
		size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
		for (size_t k = 0; k < n; k++) {
			unsigned t = ELF64_ST_TYPE(sym[k].st_info);
			if ((t != STT_FUNC && t != STT_GNU_IFUNC) || sym[k].st_shndx == SHN_UNDEF ||
			    sym[k].st_name >= str->sh_size || sym[k].st_size == 0)
				continue;
			const char *name = names + sym[k].st_name;
			if (!memchr(name, '\0', str->sh_size - sym[k].st_name))
				continue;
			uintptr_t lo = bias + sym[k].st_value;
			fn(ctx, name, lo, lo + sym[k].st_size);
		}
	}
out:
	munmap((void *)img, size);
}

struct symbols_ctx {
	struct object *o;
	struct rangebuf b;
};

static void collect(void *ctx, const char *name, uintptr_t lo, uintptr_t hi)
{
	struct symbols_ctx *c = ctx;
	match_rules(c->o, name, lo, hi, &c->b);
}

/* Records the ranges of the functions named by SECRETMEM_SITES and
 * SECRETMEM_WRAPPERS in the object, and of C++ standard library code compiled
 * into it. */
static void read_symbols(struct object *o, const char *file)
{
	struct symbols_ctx c = { o, { 0 } };
	for_each_func(file, o->bias, collect, &c);
	o->ranges = c.b.r;
	o->nranges = c.b.n;
}

/* An object built with SECRETMEM_ANNOTATE_LIBRARY has our note in a PT_NOTE segment. */
static bool annotated(const struct dl_phdr_info *info)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const unsigned char *p = (const void *)(info->dlpi_addr + ph->p_vaddr);
		const unsigned char *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const void *)p;
			const char *name = (const char *)(nh + 1);
			size_t nsz = (nh->n_namesz + 3) & ~3u, dsz = (nh->n_descsz + 3) & ~3u;
			if (nh->n_type == SECRETMEM_NOTE_TYPE && nh->n_namesz == 10 &&
			    name + nsz <= (const char *)end && memcmp(name, "secretmem", 10) == 0)
				return true;
			p += sizeof(*nh) + nsz + dsz;
		}
	}
	return false;
}

static int find_annotated(struct dl_phdr_info *info, size_t size, void *any)
{
	(void)size;
	*(bool *)any |= annotated(info);
	return 0;
}

/* ---- the object table ----
 *
 * An object is known by its load bias and path: no two loaded objects share both,
 * and the same file loaded again at the same address means the same. Nothing here
 * takes the loader's lock on an allocation path: a cache miss identifies its object
 * with _dl_find_object (lock-free, async-signal-safe), and an object the table does
 * not have yet is read from its link_map. dl_iterate_phdr runs only in rescans,
 * which the dlopen/dlmopen/dlclose hooks ask for, never with table_lock held (a
 * dl_iterate_phdr callback elsewhere in the program may allocate while the loader's
 * lock is held), and its callback only copies what it sees: files are read later,
 * under table_lock alone. See docs/attribution-loader.md. */

static char exe_path[4096];

/* Bumped by every dlopen, dlmopen and dlclose the shim sees (before the real call,
 * and after for dlclose); scan_epoch is the value the table was last brought up to
 * date with. While they differ, or while a dlclose is under way, nothing cached is
 * trusted: the fast path is off and classify() asks the table. */
static unsigned long dl_epoch, scan_epoch;
static unsigned dl_closing;
static pthread_mutex_t scan_lock = PTHREAD_MUTEX_INITIALIZER; /* taken before table_lock */

static bool loader_quiet(void)
{
	return __atomic_load_n(&dl_closing, __ATOMIC_SEQ_CST) == 0 &&
	       __atomic_load_n(&dl_epoch, __ATOMIC_SEQ_CST) ==
		       __atomic_load_n(&scan_epoch, __ATOMIC_SEQ_CST);
}

static void describe(const struct object *o, bool note)
{
	if (sm_log_level < SM_LOG_DEBUG)
		return;
	if (o->cls == SM_MACHINERY)
		sm_debug("object %s: allocation machinery, looked through", o->path);
	else if (note)
		sm_debug("object %s: annotated with SECRETMEM_ANNOTATE_LIBRARY, all its allocations are secret", o->path);
	else if (o->cls == SM_SECRET)
		sm_debug("object %s: matches SECRETMEM_LIBS, all its allocations are secret", o->path);
}

static const char *object_name(const char *name)
{
	return name && *name ? name : exe_path; /* the main program has no name */
}

/* The one place a new object is registered: found by a rescan (dl_iterate_phdr) or
 * by a cache miss (_dl_find_object). info->dlpi_name is its path (the program's
 * for the main program), [lo, hi) its mapping, note whether it is annotated.
 * Called with table_lock held; reads its symbols from the file. */
static struct object *add_object(const struct dl_phdr_info *info, uintptr_t lo, uintptr_t hi,
				 bool note)
{
	const char *name = info->dlpi_name;
	for (size_t i = 0; i < nobjects; i++) {
		struct object *o = &objects[i];
		if (o->present && o->bias == info->dlpi_addr && strcmp(o->path, name) == 0)
			return o;
	}
	/* A slot of an unloaded object is reused, else a new one. */
	size_t slot = 0;
	while (slot < nobjects && objects[slot].present)
		slot++;
	if (slot == MAX_OBJECTS) {
		sm_warn("more than %d objects loaded: %s is not routed", MAX_OBJECTS, name);
		return NULL;
	}
	struct object o = { .lo = lo, .hi = hi, .bias = info->dlpi_addr };
	o.path = sm_meta_strndup(name, strlen(name));
	if (!o.path)
		return NULL;

	if (info->dlpi_addr == libc_bias || info->dlpi_addr == ldso_bias ||
	    info->dlpi_addr == self_bias || is_cxx_runtime(base_name(name))) {
		o.cls = SM_MACHINERY;
		note = false;
	} else {
		bool lib = false;
		for (size_t i = 0; i < sm_opt.nlibs && !lib; i++)
			lib = glob_matches(sm_opt.libs[i], name);
		o.cls = note || lib ? SM_SECRET : SM_ORDINARY;
		read_symbols(&o, strcmp(name, exe_path) == 0 ? "/proc/self/exe" : name);
	}
	have_rules |= o.cls == SM_SECRET;
	for (size_t i = 0; i < o.nranges; i++)
		have_rules |= o.ranges[i].cls == SM_SECRET;
	describe(&o, note);
	/* Its own references to the allocation API: secret entry points for a tagged
	 * object, and the shim for any object the loader bound past it. */
	if (o.cls != SM_MACHINERY)
		sm_reloc_patch(info, o.path, o.cls == SM_SECRET);
	o.present = true;
	objects[slot] = o;
	if (slot == nobjects)
		nobjects++;
	return &objects[slot];
}

static void flush_cache(void);
static void update_fast_tag(void);

/* The object holding code address a, from the loader's own lock-free index; one
 * the table does not know yet is added, and a table entry overlapping it that is
 * not it (an object unloaded without the shim noticing) is dropped. NULL: no
 * object (generated code). Called with table_lock held. */
static struct object *object_at(uintptr_t a)
{
	struct dl_find_object f;
	if (_dl_find_object((void *)a, &f) != 0 || !f.dlfo_link_map)
		return NULL;
	const struct link_map *lm = f.dlfo_link_map;
	uintptr_t lo = (uintptr_t)f.dlfo_map_start, hi = (uintptr_t)f.dlfo_map_end;
	const char *name = object_name(lm->l_name);
	bool stale = false;
	for (size_t i = 0; i < nobjects; i++) {
		struct object *o = &objects[i];
		if (!o->present)
			continue;
		if (o->bias == lm->l_addr && strcmp(o->path, name) == 0)
			return o;
		if (o->lo < hi && lo < o->hi) {
			o->present = false;
			sm_frames_forget(o->lo, o->hi); /* the unwind rules of code that is gone */
			stale = true;
		}
	}
	if (stale)
		flush_cache();
	struct dl_phdr_info info = { .dlpi_addr = lm->l_addr, .dlpi_name = name };
#if HAVE_DECL_RTLD_DI_PHDR
	const ElfW(Phdr) *phdr = NULL;
	int n = dlinfo((void *)lm, RTLD_DI_PHDR, &phdr);
	if (n > 0 && phdr) {
		info.dlpi_phdr = phdr;
		info.dlpi_phnum = (ElfW(Half))n;
	}
#endif
	return add_object(&info, lo, hi, info.dlpi_phdr && annotated(&info));
}

/* ---- rescans ---- */

/* What the latest rescan's dl_iterate_phdr saw, copied in its callback (scan_lock
 * held): the table is updated from it afterwards, under table_lock. */
struct seen {
	struct dl_phdr_info info; /* dlpi_name points into seen_names */
	uintptr_t lo, hi;
	bool note;
};
static struct seen seen[MAX_OBJECTS];
static char seen_names[256 * 1024];
static size_t nseen, seen_names_used;
static unsigned long long seen_adds, seen_subs;
static bool scan_all, scan_changed;

static int collect_object(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)data;
	if (nseen == 0 && !scan_all && size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs) &&
	    info->dlpi_adds == seen_adds && info->dlpi_subs == seen_subs)
		return 1; /* nothing loaded or unloaded since the last rescan */
	if (nseen == 0 && size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
		seen_adds = info->dlpi_adds;
		seen_subs = info->dlpi_subs;
	}
	scan_changed = true;
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t s = info->dlpi_addr + ph->p_vaddr;
		if (s < lo)
			lo = s;
		if (s + ph->p_memsz > hi)
			hi = s + ph->p_memsz;
	}
	const char *name = object_name(info->dlpi_name);
	size_t len = strlen(name) + 1;
	if (lo >= hi || nseen == MAX_OBJECTS || len > sizeof(seen_names) - seen_names_used)
		return 0;
	struct seen *s = &seen[nseen++];
	s->info = *info;
	s->info.dlpi_name = memcpy(seen_names + seen_names_used, name, len);
	seen_names_used += len;
	s->lo = lo & ~(uintptr_t)4095;
	s->hi = hi;
	s->note = annotated(info); /* memory only: no file is read under the loader's lock */
	return 0;
}

/* Brings the table up to date with what the loader has now: objects it no longer
 * has are dropped (and the cache flushed), new ones registered. all: even if the
 * loader's load and unload counters did not move. With try, gives up at once if
 * another thread is rescanning (the caller then trusts nothing cached). */
static void rescan(bool all, bool try)
{
	if (try ? pthread_mutex_trylock(&scan_lock) != 0 : pthread_mutex_lock(&scan_lock) != 0)
		return;
	unsigned long epoch = __atomic_load_n(&dl_epoch, __ATOMIC_SEQ_CST);
	nseen = seen_names_used = 0;
	scan_all = all;
	scan_changed = false;
	dl_iterate_phdr(collect_object, NULL);
	pthread_mutex_lock(&table_lock);
	if (scan_changed) {
		bool dropped = false;
		for (size_t i = 0; i < nobjects; i++) {
			struct object *o = &objects[i];
			if (!o->present)
				continue;
			size_t k = 0;
			while (k < nseen && !(seen[k].info.dlpi_addr == o->bias &&
					      strcmp(seen[k].info.dlpi_name, o->path) == 0))
				k++;
			if (k == nseen) {
				o->present = false;
				sm_frames_forget(o->lo, o->hi);
				dropped = true;
			}
		}
		if (dropped)
			flush_cache();
		for (size_t k = 0; k < nseen; k++)
			add_object(&seen[k].info, seen[k].lo, seen[k].hi, seen[k].note);
	}
	__atomic_store_n(&scan_epoch, epoch, __ATOMIC_SEQ_CST);
	update_fast_tag();
	pthread_mutex_unlock(&table_lock);
	pthread_mutex_unlock(&scan_lock);
}

void sm_route_loading(void)
{
	__atomic_add_fetch(&dl_epoch, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&sm_route_fast_tag, UINT64_MAX, __ATOMIC_SEQ_CST);
}

void sm_route_settle(void)
{
	if (__atomic_load_n(&objects, __ATOMIC_ACQUIRE) && !loader_quiet())
		rescan(false, false);
}

void sm_route_closing(bool begin)
{
	if (begin) {
		__atomic_add_fetch(&dl_closing, 1, __ATOMIC_SEQ_CST);
		sm_route_loading();
	}
	if (__atomic_load_n(&objects, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&table_lock);
		flush_cache();
		pthread_mutex_unlock(&table_lock);
	}
	if (!begin) {
		sm_route_loading();
		__atomic_sub_fetch(&dl_closing, 1, __ATOMIC_SEQ_CST);
	}
}

/* ---- the code-address cache ---- */

/* The fast path may settle calls from the cache only while nothing is pending.
 * Called with table_lock held, so that no older tag can be stored over a newer
 * one; the hooks store all ones (never matches) without it. */
static void update_fast_tag(void)
{
	uint64_t tag = UINT64_MAX;
	/* With SECRETMEM_STATS every decision is counted, so none is settled inline. */
	if (!route_all && !sm_opt.depth && !sm_stats_on && loader_quiet())
		tag = __atomic_load_n(&sm_route_tag, __ATOMIC_RELAXED);
	__atomic_store_n(&sm_route_fast_tag, tag, __ATOMIC_SEQ_CST);
	if (tag != UINT64_MAX && !loader_quiet()) /* a hook ran meanwhile */
		__atomic_store_n(&sm_route_fast_tag, UINT64_MAX, __ATOMIC_SEQ_CST);
}

static void set_generation(unsigned g)
{
	generation = g;
	uint64_t tag = (uint64_t)g << (SM_PC_BITS + 2);
	__atomic_store_n(&sm_route_tag, tag, __ATOMIC_RELAXED);
	update_fast_tag();
}

/* Called with table_lock held. */
static void flush_cache(void)
{
	if (generation + 1 >= (1u << (64 - SM_PC_BITS - 2))) {
		for (size_t i = 0; i < (1u << SM_CACHE_BITS); i++)
			__atomic_store_n(&sm_route_cache[i], 0, __ATOMIC_RELAXED);
		set_generation(1);
	} else {
		set_generation(generation + 1);
	}
}

/* Called with table_lock held, so entries always carry the current generation;
 * nothing is stored while a load or unload is pending. */
static void cache_store(uintptr_t pc, enum sm_class cls)
{
	if (pc >> SM_PC_BITS || !loader_quiet())
		return; /* not representable: such addresses are always classified afresh */
	uint64_t e = pc | ((uint64_t)cls << SM_PC_BITS) | sm_route_tag;
	unsigned i = sm_route_slot(pc), victim = i;
	for (unsigned k = 0; k < SM_CACHE_PROBE; k++) {
		unsigned j = (i + k) & ((1u << SM_CACHE_BITS) - 1);
		uint64_t old = __atomic_load_n(&sm_route_cache[j], __ATOMIC_RELAXED);
		/* an empty slot, or one of an older generation, or our own */
		if (!old || (old & ~((1ull << (SM_PC_BITS + 2)) - 1)) != sm_route_tag ||
		    (old & ((1ull << SM_PC_BITS) - 1)) == pc) {
			victim = j;
			break;
		}
	}
	__atomic_store_n(&sm_route_cache[victim], e, __ATOMIC_RELAXED);
}

/* Called with table_lock held. */
static enum sm_class classify_locked(uintptr_t pc)
{
	/* A return address may lie just past the end of a function that ends in a
	 * call; the call itself is at pc - 1. */
	uintptr_t a = pc - 1;
	struct object *o = object_at(a);
	if (!o)
		return SM_ORDINARY; /* generated code outside any object */
	enum sm_class cls = o->cls;
	for (size_t i = 0; i < o->nranges; i++) {
		const struct range *r = &o->ranges[i];
		if (a - r->lo < r->hi - r->lo) {
			cls = r->cls;
			if (cls == SM_MACHINERY)
				break; /* a wrapper is looked through even if also named a site */
		}
	}
	return cls;
}

static enum sm_class classify(uintptr_t pc)
{
	if (loader_quiet()) {
		int c = sm_route_lookup(pc);
		if (c >= 0)
			return (enum sm_class)c;
	} else {
		rescan(false, true); /* gives up if another thread rescans */
	}
	pthread_mutex_lock(&table_lock);
	enum sm_class cls = classify_locked(pc);
	cache_store(pc, cls);
	pthread_mutex_unlock(&table_lock);
	return cls;
}

void sm_route_objects_changed(void)
{
	if (!objects)
		return;
	sm_route_loading();
	rescan(true, false);
}

void sm_route_fork_prepare(void)
{
	pthread_mutex_lock(&table_lock);
	sm_meta_fork_prepare();
}

void sm_route_fork_parent(void)
{
	sm_meta_fork_parent();
	pthread_mutex_unlock(&table_lock);
}

/* The child has one thread; another thread of the parent may have been inside the
 * loader (its lock is not reset in the child), or inside a rescan, or a dlclose.
 * Nothing it left pending is rescanned here: the child calls dl_iterate_phdr only
 * when its own dlopen or dlclose asks, and misses are identified lock-free. */
void sm_route_fork_child(void)
{
	sm_meta_fork_child();
	pthread_mutex_init(&table_lock, NULL);
	pthread_mutex_init(&scan_lock, NULL);
	dl_closing = 0;
	scan_epoch = dl_epoch;
	if (objects)
		flush_cache(); /* an unload half done in the parent leaves nothing cached */
	else
		update_fast_tag();
}

/* ---- the decision ---- */

/* Frames of the shim itself above the caller's (decide, walk, the API function),
 * with room to spare, plus look-through frames. */
#define WALK_OWN 6
#define WALK_MACHINERY 24

/* libgcc's unwinder (_Unwind_Backtrace), for the walks the shim's own (frames.c)
 * gives up on, loaded when routing starts rather than with the shim. It finds each
 * frame's object with _dl_find_object, so a walk takes no lock a fork can leave
 * held (libgcc's own lock guards only frames registered with
 * __register_frame_info, which nothing on Debian does unless a JIT asks). Either
 * walk stops as soon as the decision is known. */
static _Unwind_Reason_Code (*unwind_backtrace)(_Unwind_Trace_Fn, void *);
static _Unwind_Ptr (*unwind_getip)(struct _Unwind_Context *);

static _Unwind_Reason_Code count_frame(struct _Unwind_Context *ctx, void *arg)
{
	(void)ctx;
	return ++*(int *)arg < 4 ? _URC_NO_REASON : _URC_END_OF_STACK;
}

void sm_route_load_unwinder(void)
{
	if (__atomic_load_n(&unwind_backtrace, __ATOMIC_ACQUIRE))
		return;
	/* No lock: a thread in dlopen (holding the loader's lock) may get here too;
	 * two loads only take two references. */
	void *h = dlopen(SM_UNWINDER_SONAME, RTLD_NOW | RTLD_LOCAL);
	void *f = h ? dlsym(h, "_Unwind_Backtrace") : NULL;
	void *g = h ? dlsym(h, "_Unwind_GetIP") : NULL;
	if (!f || !g)
		sm_die("cannot load %s, which finds the callers of allocations: %s "
		       "(Debian: apt-get install libgcc-s1)", SM_UNWINDER_SONAME,
		       h ? "no _Unwind_Backtrace" : dlerror());
	unwind_bias = sm_object_base(f);
	unwind_getip = (_Unwind_Ptr (*)(struct _Unwind_Context *))g;
	/* One walk now, so that the unwinder's one-time set-up is done before any fork. */
	int n = 0;
	((_Unwind_Reason_Code (*)(_Unwind_Trace_Fn, void *))f)(count_frame, &n);
	__atomic_store_n(&unwind_backtrace, (_Unwind_Reason_Code (*)(_Unwind_Trace_Fn, void *))f,
			 __ATOMIC_RELEASE);
}

struct walk {
	uintptr_t ra;
	int left;       /* frames the walk may still look at */
	int above;      /* frames above the call site still to check */
	bool seen_ra, at_site, secret;
};

/* One frame, innermost first: skip the shim's own frames up to ra, look through
 * machinery, then check the call site and the SECRETMEM_DEPTH frames above it.
 * Returns whether the walk goes on. */
static bool walk_pc(uintptr_t pc, void *arg)
{
	struct walk *w = arg;
	if (w->left-- <= 0)
		return false;
	if (!w->seen_ra) {
		if (pc != w->ra)
			return true;
		w->seen_ra = true;
	}
	enum sm_class c = classify(pc);
	if (!w->at_site) {
		if (c == SM_MACHINERY)
			return true;
		w->at_site = true;
	}
	if (c == SM_SECRET) {
		w->secret = true;
		return false;
	}
	return w->above-- > 0;
}

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *ctx, void *arg)
{
	return walk_pc((uintptr_t)unwind_getip(ctx), arg) ? _URC_NO_REASON : _URC_END_OF_STACK;
}

/* Finds the call site (the first frame at or above ra that is not machinery) and
 * checks it and the SECRETMEM_DEPTH frames above it. */
static bool walk(uintptr_t ra)
{
	if (sm_stats_on)
		__atomic_fetch_add(&sm_stats_walks, 1, __ATOMIC_RELAXED);
	_Unwind_Reason_Code (*backtrace)(_Unwind_Trace_Fn, void *) =
		__atomic_load_n(&unwind_backtrace, __ATOMIC_ACQUIRE);
	if (!backtrace)
		return false; /* routing is starting: only the immediate caller counts */
	/* When the unwinder loses us before ra, ra alone was not secret. */
	const struct walk start = { .ra = ra, .left = WALK_OWN + WALK_MACHINERY + (int)sm_opt.depth + 1,
				    .above = (int)sm_opt.depth };
	struct walk w = start;
	/* The fast unwinder first; where it gives up (signal frames, unusual unwind
	 * tables), libgcc's from the start. */
	if (sm_frames_walk(walk_pc, &w, w.left, true))
		return w.secret;
	w = start;
	backtrace(walk_frame, &w);
	return w.secret;
}

bool sm_route_reentered(uintptr_t pc)
{
	if (sm_thread.scope || route_all)
		return true;
	int c = loader_quiet() ? sm_route_lookup(pc) : -1;
	if (c >= 0)
		return c == SM_SECRET;
	/* Not cached: classify only if nobody (this thread's interrupted code
	 * included) holds the table. Else: the routing code's own helpers (libc, the
	 * loader, the unwinder, the shim) get ordinary memory; any other caller is a
	 * signal handler that interrupted the routing code, and its allocation is made
	 * secret, since it cannot be told apart now (an ordinary block in secret
	 * memory harms nothing; the reverse would leak). _dl_find_object is
	 * async-signal-safe. */
	if (pthread_mutex_trylock(&table_lock) != 0) {
		uintptr_t b = sm_object_base((const void *)pc);
		return !(b == libc_bias || b == ldso_bias || b == self_bias ||
			 (unwind_bias && b == unwind_bias));
	}
	enum sm_class cls = classify_locked(pc);
	cache_store(pc, cls);
	pthread_mutex_unlock(&table_lock);
	return cls == SM_SECRET;
}

bool sm_route_decide(void *ra)
{
	if (sm_stats_on)
		__atomic_fetch_add(&sm_stats_decisions, 1, __ATOMIC_RELAXED);
	if (sm_thread.scope || route_all)
		return true;
	enum sm_class c = classify((uintptr_t)ra);
	if (c == SM_SECRET)
		return true;
	if (c == SM_ORDINARY && !sm_opt.depth)
		return false;
	return walk((uintptr_t)ra);
}

/* ---- names, for the statistics ---- */

struct name_ctx {
	uintptr_t pc, best_lo;
	char *buf;
	size_t size;
};

static void closest(void *ctx, const char *name, uintptr_t lo, uintptr_t hi)
{
	struct name_ctx *c = ctx;
	if (c->pc - lo < hi - lo && lo >= c->best_lo) {
		c->best_lo = lo;
		sm_format(c->buf, c->size, "%s", name);
	}
}

bool sm_route_name(uintptr_t pc, char *buf, size_t size, uintptr_t *offset, const char **object)
{
	buf[0] = '\0';
	*object = "?";
	*offset = 0;
	if (!objects)
		return false;
	/* At exit, from the statistics report: what the table's helpers allocate
	 * goes to the next allocator, as on any other path into the table. */
	sm_thread.in_shim++;
	pthread_mutex_lock(&table_lock);
	struct object *o = object_at(pc);
	pthread_mutex_unlock(&table_lock);
	sm_thread.in_shim--;
	if (!o)
		return false;
	*object = o->path;
	struct name_ctx c = { pc, 0, buf, size };
	for_each_func(strcmp(o->path, exe_path) == 0 ? "/proc/self/exe" : o->path, o->bias, closest, &c);
	*offset = buf[0] ? pc - c.best_lo : pc - o->bias;
	return buf[0] != '\0';
}

/* ---- start-up ---- */

/* At log level info, a rule that matches nothing loaded now is worth a line: a typo
 * would otherwise protect nothing without a word. */
static void report_unmatched(void)
{
	for (size_t i = 0; i < sm_opt.nlibs; i++) {
		bool hit = strcmp(sm_opt.libs[i], "*") == 0;
		for (size_t k = 0; k < nobjects && !hit; k++)
			hit = objects[k].cls != SM_MACHINERY && glob_matches(sm_opt.libs[i], objects[k].path);
		if (!hit)
			sm_info("SECRETMEM_LIBS pattern %s matches no object loaded now (an object loaded later may match)",
				sm_opt.libs[i]);
	}
	for (size_t i = 0; i < sm_opt.nsites; i++) {
		bool hit = false;
		for (size_t k = 0; k < nobjects && !hit; k++)
			for (size_t r = 0; r < objects[k].nranges && !hit; r++)
				hit = objects[k].ranges[r].rule == &sm_opt.sites[i];
		if (!hit)
			sm_info("SECRETMEM_SITES entry %s%s%s matches no function in the objects loaded now",
				sm_opt.sites[i].lib ? sm_opt.sites[i].lib : "",
				sm_opt.sites[i].lib ? ":" : "", sm_opt.sites[i].func);
	}
}

bool sm_route_init(void)
{
	ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
	exe_path[n > 0 ? n : 0] = '\0';

	libc_bias = sm_object_base((const void *)gnu_get_libc_version); /* never interposed */
	ldso_bias = (uintptr_t)getauxval(AT_BASE);
	self_bias = sm_object_base((const void *)sm_route_init);

	for (size_t i = 0; i < sm_opt.nlibs; i++)
		route_all |= strcmp(sm_opt.libs[i], "*") == 0;

	struct object *table = sm_meta_alloc(MAX_OBJECTS * sizeof(*objects));
	if (!table)
		sm_die("cannot map memory for the routing tables");
	sm_reloc_init(); /* dl_iterate_phdr: never under the table's lock */
	pthread_mutex_lock(&table_lock);
	set_generation(1);
	pthread_mutex_unlock(&table_lock);
	__atomic_store_n(&objects, table, __ATOMIC_RELEASE);

	/* Without a rule in the environment only an annotated object can start routing
	 * now: look for one without reading any file. The table is then built on the
	 * first cache miss, if routing ever starts (a scope, a dlopened annotation). */
	if (!sm_options_have_rules(&sm_opt)) {
		bool any = false;
		dl_iterate_phdr(find_annotated, &any);
		if (!any)
			return false;
	}
	rescan(true, false);
	if (sm_options_have_rules(&sm_opt))
		report_unmatched();
	return have_rules || sm_options_have_rules(&sm_opt);
}
