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
#include "elfsym.h"
#include "log.h"
#include "meta.h"
#include "options.h"
#include "reloc.h"
#include "stats.h"
#include "symmatch.h"
#include "debuginfo.h"

#include <dlfcn.h>
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

/* In .bss: no page of it is touched unless routing runs. */
uint64_t sm_route_cache[SM_CACHE_SLOTS];
uint64_t sm_route_tag;
uint64_t sm_route_fast_tag = UINT64_MAX;
static bool route_all; /* SECRETMEM_LIBS contains "*" */

static unsigned generation = 1; /* 1..SM_GEN_MAX, in bits 49-63 of a cache entry (route_cache.h) */

struct range {
	uintptr_t lo, hi;
	enum sm_class cls;      /* SM_SECRET (a site) or SM_MACHINERY (a wrapper) */
	const struct sm_site *rule;
};

/* The main program's name as started, that name made absolute, the file mapped,
 * DT_SONAME. */
#define OBJECT_ALIASES 4

struct object {
	uintptr_t lo, hi;       /* lowest and highest address of its PT_LOAD segments */
	uintptr_t bias;         /* dlpi_addr */
	const char *path;       /* the name the loader was given (l_name); the main program's file */
	const char *alias[OBJECT_ALIASES]; /* its other names (object_aliases), NULL-ended */
	const ElfW(Phdr) *phdr; /* its program headers (dlpi_phdr), for reading it */
	unsigned phnum;
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
static bool have_sites; /* a SECRETMEM_SITES entry matched a function */
/* The thread reading an object's symbols, while it does (read_symbols). */
static pthread_t reader;
static bool reading;
/* Which rules have matched something (NULL until the start-up report): a rule
 * that first matches in an object loaded later is worth an info line. */
static bool *lib_seen, *site_seen;
/* per rule: the read_gen of the last object a lost_inlined warning named (0: none) */
static unsigned *site_lost, read_gen;

/* ---- rules ---- */

/* The main program's file (/proc/self/exe), and the name it was started by
 * (AT_EXECFN: what was passed to execve, before symbolic links are followed). */
static char exe_path[4096], exec_name[4096];
static char exec_abs[4096]; /* exec_name made absolute at start-up (absolute_name) */

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static bool name_matches(const char *glob, const char *path)
{
	return fnmatch(glob, path, 0) == 0 || fnmatch(glob, base_name(path), 0) == 0;
}

/* A pattern (SECRETMEM_LIBS, the LIBGLOB of SECRETMEM_SITES and SECRETMEM_WRAPPERS)
 * against every name the object is known by, whole or its file name: the name the
 * loader was given and the others object_aliases found when it was registered. */
static bool object_matches(const char *glob, const struct object *o)
{
	if (name_matches(glob, o->path))
		return true;
	for (size_t i = 0; i < OBJECT_ALIASES && o->alias[i]; i++)
		if (name_matches(glob, o->alias[i]))
			return true;
	return false;
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
	struct sm_symbol ss; /* demangled once, if a rule needs it */
	ss.sym = sym;
	ss.state = 0;
	for (size_t i = 0; i < sm_opt.nsites; i++) {
		const struct sm_site *s = &sm_opt.sites[i];
		if (sm_symbol_matches(s->func, &ss) && (!s->lib || object_matches(s->lib, o))) {
			add_range(b, lo, hi, SM_SECRET, s);
			if (site_seen && !site_seen[i]) {
				site_seen[i] = true;
				sm_info("SECRETMEM_SITES entry %s%s%s now matches %s in %s, loaded after start-up",
					s->lib ? s->lib : "", s->lib ? ":" : "", s->func, sym, o->path);
			}
			sm_debug("SECRETMEM_SITES %s%s%s: %s at %p (%zu bytes) in %s",
				 s->lib ? s->lib : "", s->lib ? ":" : "", s->func, sym,
				 (void *)lo, (size_t)(hi - lo), o->path);
		}
	}
	for (size_t i = 0; i < sm_opt.nwrappers; i++) {
		const struct sm_site *s = &sm_opt.wrappers[i];
		if (sm_symbol_matches(s->func, &ss) && (!s->lib || object_matches(s->lib, o))) {
			add_range(b, lo, hi, SM_MACHINERY, s);
			sm_debug("SECRETMEM_WRAPPERS %s: %s at %p in %s, looked through",
				 s->func, sym, (void *)lo, o->path);
		}
	}
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

/* An object loaded after start-up matches a SECRETMEM_LIBS pattern that matched
 * nothing until now. */
static void report_late_libs(const struct object *o)
{
	for (size_t i = 0; lib_seen && i < sm_opt.nlibs; i++) {
		if (!lib_seen[i] && object_matches(sm_opt.libs[i], o)) {
			lib_seen[i] = true;
			sm_info("SECRETMEM_LIBS pattern %s now matches %s, loaded after start-up",
				sm_opt.libs[i], o->path);
		}
	}
}

static struct sm_elf_object elf_object(const struct object *o)
{
	return (struct sm_elf_object){ o->bias, o->path, o->phdr, o->phnum };
}

/* Records the ranges of the functions named by SECRETMEM_SITES and
 * SECRETMEM_WRAPPERS in the object, and of C++ standard library code compiled
 * into it, read from the file actually mapped (elfsym.c says how it is found). */
/* ---- inlined copies of sites (debuginfo.c) ---- */

static bool site_wanted(void *ctx, const char *name)
{
	const struct object *o = ((const struct symbols_ctx *)ctx)->o;
	struct sm_symbol ss;
	ss.sym = name;
	ss.state = 0;
	for (size_t i = 0; i < sm_opt.nsites; i++) {
		const struct sm_site *s = &sm_opt.sites[i];
		if (sm_symbol_matches(s->func, &ss) && (!s->lib || object_matches(s->lib, o)))
			return true;
	}
	return false;
}

static void add_inlined(void *ctx, const char *name, uintptr_t lo, uintptr_t hi)
{
	struct symbols_ctx *c = ctx;
	size_t before = c->b.n;
	match_rules(c->o, name, lo, hi, &c->b);
	for (size_t i = before; i < c->b.n; i++)
		if (c->b.r[i].cls == SM_SECRET)
			sm_debug("SECRETMEM_SITES %s: a copy inlined at %p (%zu bytes) in %s", c->b.r[i].rule->func,
				 (void *)lo, (size_t)(hi - lo), c->o->path);
}

/* A site the compiler inlined whose copies the debug information lost: they are
 * merged into identical code it attributes to another function (at -O2 two
 * calls, say malloc(n) and realloc(NULL, n), that became the same instructions
 * share one copy), or gone. When the rule matched no code of the object at all,
 * that is a warning (once per rule and object), in place of the one that the
 * rule matches nothing: nothing the object allocates through the site is secret.
 * (A rule that matched other code of the object, in one unit while a copy in
 * another was removed as dead, say, says nothing.) */
static void lost_inlined(void *ctx, const char *name)
{
	const struct symbols_ctx *c = ctx;
	const struct object *o = c->o;
	const char *prog = strrchr(exe_path, '/') ? strrchr(exe_path, '/') + 1 : exe_path;
	struct sm_symbol ss;
	ss.sym = name;
	ss.state = 0;
	for (size_t i = 0; i < sm_opt.nsites; i++) {
		const struct sm_site *s = &sm_opt.sites[i];
		if (!sm_symbol_matches(s->func, &ss) || (s->lib && !object_matches(s->lib, o)))
			continue;
		bool matched = false;
		for (size_t r = 0; r < c->b.n && !matched; r++)
			matched = c->b.r[r].rule == s;
		if (!site_lost)
			site_lost = sm_meta_alloc((sm_opt.nsites + 1) * sizeof(*site_lost));
		if (matched || (site_lost && site_lost[i] == read_gen))
			continue;
		if (site_lost)
			site_lost[i] = read_gen;
		sm_warn("SECRETMEM_SITES entry %s%s%s: the compiler inlined %s in %s, and its debug "
			"information records no copy of it (merged into identical code, or removed): "
			"what such a copy allocates is not secret; name the function it was inlined "
			"into, or use a scope (secretmem.h) (program: %s)",
			s->lib ? s->lib : "", s->lib ? ":" : "", s->func, name, o->path, prog);
	}
}

/* The object's inlined copies of sites, from its debug information; a warning
 * when it has a site but no debug information says where copies went. */
static void read_inlined(struct symbols_ctx *c, const struct sm_elf_object *eo, const char *file)
{
	bool has_site = false;
	for (size_t i = 0; i < c->b.n && !has_site; i++)
		has_site = c->b.r[i].cls == SM_SECRET;
	/* what every name of a rule that applies here contains, to skip files that
	 * name none (a system library's -dbg file); none when a rule has no key */
	static const char **site_keys; /* per rule, computed once; "" for none */
	if (!site_keys && (site_keys = sm_meta_alloc(sm_opt.nsites * sizeof(*site_keys) + 1)))
		for (size_t i = 0; i < sm_opt.nsites; i++) {
			char key[256];
			site_keys[i] = sm_rule_key(sm_opt.sites[i].func, key, sizeof(key))
					       ? sm_meta_strndup(key, strlen(key)) : NULL;
			if (!site_keys[i])
				site_keys[i] = "";
		}
	static const char **keys; /* of the rules that apply here */
	if (!keys)
		keys = sm_meta_alloc(sm_opt.nsites * sizeof(*keys) + 1);
	size_t nkeys = 0;
	bool unkeyed = !site_keys || !keys;
	for (size_t i = 0; site_keys && keys && i < sm_opt.nsites; i++) {
		const struct sm_site *s = &sm_opt.sites[i];
		if (s->lib && !object_matches(s->lib, c->o))
			continue;
		if (site_keys[i][0] != '\0')
			keys[nkeys++] = site_keys[i];
		else
			unkeyed = true;
	}
	enum sm_debuginfo d = sm_debuginfo_inlined(eo, file, keys, nkeys, !unkeyed, unkeyed,
						   site_wanted, add_inlined, lost_inlined, c);
	if (!has_site || d == SM_DEBUGINFO_READ || !file)
		return; /* (without the file, the warning about it says more) */
	if (d == SM_DEBUGINFO_NO_LIBDW)
		sm_warn("%s has a SECRETMEM_SITES function, but libdw.so.1 is not installed: copies of it the "
			"compiler inlined are not found (Debian: apt-get install libdw1)", c->o->path);
	else
		sm_warn("%s has a SECRETMEM_SITES function but no debug information: copies of it the compiler "
			"inlined are not found (install its debug symbols, e.g. its -dbgsym package, or build with -g)",
			c->o->path);
}

static void read_symbols_now(struct object *o, const struct sm_elf_mapping *map);

/* Records the ranges of the functions named by SECRETMEM_SITES and
 * SECRETMEM_WRAPPERS in the object (and their inlined copies, from its debug
 * information), and of C++ standard library code compiled into it, read from the
 * file actually mapped (elfsym.c says how it is found; map: the mapping
 * sm_elf_mapping found for it, NULL if none). */
static void read_symbols(struct object *o, const struct sm_elf_mapping *map)
{
	/* What the readers allocate (libdw and libelf can take megabytes for a large
	 * program's debug information; the demangler its strings) is ordinary: secret
	 * memory is a small locked budget. Those allocations re-enter the shim on
	 * this thread while it holds the table, so sm_route_reentered tells them by
	 * this flag (a signal handler interrupting this thread here is ordinary too). */
	reader = pthread_self();
	__atomic_store_n(&reading, true, __ATOMIC_RELEASE);
	read_symbols_now(o, map);
	__atomic_store_n(&reading, false, __ATOMIC_RELEASE);
}

static void read_symbols_now(struct object *o, const struct sm_elf_mapping *map)
{
	struct symbols_ctx c = { o, { 0 } };
	struct sm_elf_object eo = elf_object(o);
	if (++read_gen == 0)
		read_gen = 1;
	char file[4096];
	enum sm_elf_source src = sm_elf_for_each_func_in(&eo, map, collect, &c, file, sizeof(file));
	if (sm_opt.nsites && o->phnum && strncmp(o->path, "linux-vdso", 10) != 0)
		read_inlined(&c, &eo, src == SM_ELF_FILE || src == SM_ELF_MAP_FILES ? file : NULL);
	o->ranges = c.b.r;
	o->nranges = c.b.n;
	report_late_libs(o);
	if (src == SM_ELF_MEMORY && sm_opt.nsites && o->phnum && o->path[0] != '\0' &&
	    strncmp(o->path, "linux-vdso", 10) != 0)
		sm_warn("cannot read the file of %s (replaced or deleted since it was loaded): "
			"only its exported functions can match SECRETMEM_SITES (static ones cannot)",
			o->path);
}

static int find_annotated(struct dl_phdr_info *info, size_t size, void *any)
{
	(void)size;
	struct sm_elf_object eo = { info->dlpi_addr, info->dlpi_name, info->dlpi_phdr, info->dlpi_phnum };
	*(bool *)any |= sm_elf_annotated(&eo);
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

/* name without "." components or repeated slashes, made absolute with the working
 * directory (getcwd: symbolic links resolved) if it is relative: what a pattern
 * written as a full path names. ".." stays: past a symbolic link it is not the
 * parent the text suggests (the canonical path of the file covers that). False
 * when it does not fit in size bytes or there is no working directory. */
static bool absolute_name(const char *name, char *out, size_t size)
{
	size_t n = 0;
	if (name[0] != '/') {
		if (!getcwd(out, size) || out[0] != '/')
			return false;
		n = strlen(out);
		if (n == 1)
			n = 0; /* "/" */
	}
	for (const char *p = name; *p;) {
		while (*p == '/')
			p++;
		size_t len = strcspn(p, "/");
		if (len && !(len == 1 && p[0] == '.')) {
			if (n + 1 + len >= size)
				return false;
			out[n++] = '/';
			memcpy(out + n, p, len);
			n += len;
		}
		p += len;
	}
	if (n == 0 && size > 1)
		out[n++] = '/';
	if (n >= size)
		return false;
	out[n] = '\0';
	return true;
}

static void add_alias(struct object *o, const char *name, size_t len)
{
	if (!name || !len || (strlen(o->path) == len && memcmp(o->path, name, len) == 0))
		return;
	size_t i = 0;
	for (; i < OBJECT_ALIASES && o->alias[i]; i++)
		if (strlen(o->alias[i]) == len && memcmp(o->alias[i], name, len) == 0)
			return;
	if (i < OBJECT_ALIASES)
		o->alias[i] = sm_meta_strndup(name, len);
}

/* The names an object is known by besides the one the loader was given, found once
 * when it is registered (patterns are matched then, never per allocation): for the
 * main program the name it was started by (AT_EXECFN, perhaps a symbolic link to
 * another file name: Debian's /usr/bin/stunnel is stunnel4); a relative name (a
 * dlopen of "./plugin.so", the program started as ./bin/app) made absolute;
 * the file actually mapped as the kernel names it (map: the /proc/self/maps line of
 * its first segment): its canonical path, through any symbolic link, "..", or
 * RUNPATH $ORIGIN/../lib, the name /proc/PID/maps shows and secretmem-audit
 * proposes; and its DT_SONAME. Never allocates (sm_meta_strndup). Not inlined: its
 * buffer is off the stack before the symbols are read (a cache miss may register
 * an object on a thread with a small stack). */
__attribute__((noinline)) static void object_aliases(struct object *o, const struct sm_elf_mapping *map)
{
	char buf[4096];
	if (strcmp(o->path, exe_path) == 0 && exec_name[0]) {
		add_alias(o, exec_name, strlen(exec_name));
		add_alias(o, exec_abs, strlen(exec_abs));
	}
	if (absolute_name(o->path, buf, sizeof(buf)))
		add_alias(o, buf, strlen(buf));
	if (map && map->inode && map->path[0] == '/') {
		static const char deleted[] = " (deleted)"; /* unlinked since: the name it had */
		size_t len = strlen(map->path), d = sizeof(deleted) - 1;
		if (len > d && strcmp(map->path + len - d, deleted) == 0)
			len -= d;
		add_alias(o, map->path, len);
	}
	struct sm_elf_object eo = elf_object(o);
	const char *soname = sm_elf_soname(&eo);
	if (soname)
		add_alias(o, soname, strlen(soname));
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
	struct object o = { .lo = lo, .hi = hi, .bias = info->dlpi_addr,
			    .phdr = info->dlpi_phdr, .phnum = info->dlpi_phnum };
	o.path = sm_meta_strndup(name, strlen(name));
	if (!o.path)
		return NULL;

	if (info->dlpi_addr == libc_bias || info->dlpi_addr == ldso_bias ||
	    info->dlpi_addr == self_bias || is_cxx_runtime(base_name(name))) {
		o.cls = SM_MACHINERY;
		note = false;
	} else {
		/* one read of /proc/self/maps, for the object's names and its symbols */
		struct sm_elf_mapping map;
		struct sm_elf_object eo = elf_object(&o);
		bool have_map = sm_elf_mapping(&eo, &map);
		object_aliases(&o, have_map ? &map : NULL);
		bool lib = false;
		for (size_t i = 0; i < sm_opt.nlibs && !lib; i++)
			lib = object_matches(sm_opt.libs[i], &o);
		o.cls = note || lib ? SM_SECRET : SM_ORDINARY;
		read_symbols(&o, have_map ? &map : NULL);
	}
	have_rules |= o.cls == SM_SECRET;
	for (size_t i = 0; i < o.nranges; i++)
		have_sites |= o.ranges[i].cls == SM_SECRET;
	have_rules |= have_sites;
	describe(&o, note);
	for (size_t i = 0; sm_log_level >= SM_LOG_DEBUG && i < OBJECT_ALIASES && o.alias[i]; i++)
		sm_debug("object %s: also known as %s", o.path, o.alias[i]);
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
	struct sm_elf_object eo = { info.dlpi_addr, name, info.dlpi_phdr, info.dlpi_phnum };
	return add_object(&info, lo, hi, info.dlpi_phdr && sm_elf_annotated(&eo));
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
static bool scan_all, scan_changed, scan_partial;

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
	/* An object another thread's dlopen is still relocating is on the loader's
	 * list already, but not yet in _dl_find_object's data, which the loader
	 * updates once relocation is done. Registered now, its GOT would be patched
	 * before the loader writes it: the loader's binding wins (a tail-called strdup
	 * went to the shim's ordinary entry), or wins for only some of its references
	 * (RTLD_DEEPBIND: free bound to glibc's past a patched malloc: glibc's "free():
	 * invalid pointer"). It is left for a later rescan (scan_partial). */
	struct dl_find_object fo;
	if (lo < hi && _dl_find_object((void *)lo, &fo) != 0) {
		scan_partial = true;
		return 0;
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
	struct sm_elf_object eo = { info->dlpi_addr, name, info->dlpi_phdr, info->dlpi_phnum };
	s->note = sm_elf_annotated(&eo); /* memory only: no file is read under the loader's lock */
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
	scan_changed = scan_partial = false;
	dl_iterate_phdr(collect_object, NULL);
	if (scan_partial) /* the next rescan looks again, whatever the loader's counters */
		seen_adds = seen_subs = ~0ull;
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
	/* Not only when a hook left a rescan pending: a routed call inside the dlopen
	 * (the loader's own mallocs, before the object joins the list) may have
	 * rescanned already and found nothing new. The loader's counters say; an
	 * unchanged count costs one dl_iterate_phdr step. */
	if (__atomic_load_n(&objects, __ATOMIC_ACQUIRE))
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
		/* Drop what the loader unloaded now: left to a later rescan, an object
		 * loaded again at the same address with the same path passed for the old
		 * one, and its fresh GOT was never patched (another thread's rescan had
		 * taken the scan lock when this one's rescans would have dropped it). */
		if (__atomic_load_n(&objects, __ATOMIC_ACQUIRE))
			rescan(false, false);
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
	__atomic_store_n(&sm_route_tag, sm_cache_tag(g), __ATOMIC_RELAXED);
	update_fast_tag();
}

/* Called with table_lock held. */
static void flush_cache(void)
{
	bool wipe;
	unsigned g = sm_cache_next_generation(generation, &wipe);
	if (wipe)
		for (size_t i = 0; i < SM_CACHE_SLOTS; i++)
			__atomic_store_n(&sm_route_cache[i], 0, __ATOMIC_RELAXED);
	set_generation(g);
}

/* Called with table_lock held, so entries always carry the current generation;
 * nothing is stored while a load or unload is pending. */
static void cache_store(uintptr_t pc, enum sm_class cls)
{
	if (!sm_cache_representable(pc) || !loader_quiet())
		return; /* not representable: such addresses are always classified afresh */
	unsigned victim = sm_cache_victim(sm_route_cache, pc, sm_route_tag);
	uint64_t e = sm_cache_entry(pc, cls, sm_route_tag);
	__atomic_store_n(&sm_route_cache[victim], e, __ATOMIC_RELAXED);
}

/* ---- tail calls into a site ----
 *
 * A site that ends in "return malloc(n)" is compiled to "jmp malloc": the
 * allocator's return address is then in the site's caller, just after the call to
 * the site. So when an address is in no site, the call instruction that ends there
 * is decoded, followed through a PLT stub or GOT slot, and if it calls a site the
 * address is secret. Runs on a cache miss only. Every byte read lies in a PT_LOAD
 * segment of a loaded object with the permission the read needs (elfsym.c), so a
 * frame address that is not a return address cannot make it fault.
 */

/* The known object holding address a (the table alone, no registration). */
static struct object *find_object(uintptr_t a)
{
	for (size_t i = 0; i < nobjects; i++)
		if (objects[i].present && a - objects[i].lo < objects[i].hi - objects[i].lo)
			return &objects[i];
	return NULL;
}

/* Whether t is in a site and in no wrapper (a wrapper is looked through even if
 * also named a site, as in classify_locked). */
static bool in_site(uintptr_t t)
{
	struct object *o = find_object(t);
	bool site = false;
	for (size_t i = 0; o && i < o->nranges; i++) {
		if (t - o->ranges[i].lo >= o->ranges[i].hi - o->ranges[i].lo)
			continue;
		if (o->ranges[i].cls == SM_MACHINERY)
			return false;
		site = true;
	}
	return site;
}

static bool code_at(const struct object *o, uintptr_t a, size_t n)
{
	struct sm_elf_object eo = elf_object(o);
	return a <= UINTPTR_MAX - n && sm_elf_mapped(&eo, a, n, PF_R | PF_X);
}

/* The pointer in the slot at a, if the object maps it readable; else 0. */
static uintptr_t slot_at(uintptr_t a)
{
	struct object *o = find_object(a);
	if (!o)
		return 0;
	struct sm_elf_object eo = elf_object(o);
	if ((a & (sizeof(uintptr_t) - 1)) || !sm_elf_mapped(&eo, a, sizeof(uintptr_t), PF_R))
		return 0;
	return __atomic_load_n((const uintptr_t *)a, __ATOMIC_RELAXED);
}

static int32_t rel32(const unsigned char *p)
{
	int32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

#if defined(__x86_64__)
/* What the call that returns to ra in o calls: "call rel32" (e8) or "call
 * *disp32(%rip)" (ff 15, -fno-plt). */
static uintptr_t call_target(const struct object *o, uintptr_t ra)
{
	const unsigned char *p = (const unsigned char *)ra;
	if (code_at(o, ra - 5, 5) && p[-5] == 0xe8)
		return ra + (uintptr_t)(intptr_t)rel32(p - 4);
	if (code_at(o, ra - 6, 6) && p[-6] == 0xff && p[-5] == 0x15)
		return slot_at(ra + (uintptr_t)(intptr_t)rel32(p - 4));
	return 0;
}

/* Where a PLT stub at t jumps: "jmp *disp32(%rip)" (ff 25), after an endbr64
 * (f3 0f 1e fa) and a bnd prefix (f2) in .plt.sec; t itself when it is no stub. */
static uintptr_t through_plt(uintptr_t t)
{
	struct object *o = find_object(t);
	if (!o || !code_at(o, t, 11))
		return t;
	const unsigned char *p = (const unsigned char *)t;
	if (p[0] == 0xf3 && p[1] == 0x0f && p[2] == 0x1e && p[3] == 0xfa)
		p += 4;
	if (p[0] == 0xf2)
		p++;
	if (p[0] != 0xff || p[1] != 0x25)
		return t;
	uintptr_t next = (uintptr_t)(p + 6);
	uintptr_t to = slot_at(next + (uintptr_t)(intptr_t)rel32(p + 2));
	return to ? to : t;
}
#elif defined(__aarch64__)
static uint32_t insn_at(uintptr_t a)
{
	uint32_t v;
	memcpy(&v, (const void *)a, sizeof(v));
	return v;
}

/* "bl imm26" just before ra. */
static uintptr_t call_target(const struct object *o, uintptr_t ra)
{
	if (!code_at(o, ra - 4, 4))
		return 0;
	uint32_t i = insn_at(ra - 4);
	if ((i & 0xfc000000u) != 0x94000000u)
		return 0;
	int64_t off = (int64_t)((uint64_t)(i & 0x03ffffffu) << 38) >> 36; /* sign-extended, * 4 */
	return ra - 4 + (uintptr_t)off;
}

/* A PLT stub: [bti c;] adrp x16, page; ldr x17, [x16, #off]; add x16, ...; br x17. */
static uintptr_t through_plt(uintptr_t t)
{
	struct object *o = find_object(t);
	if (!o || !code_at(o, t, 16))
		return t;
	uintptr_t p = t;
	if (insn_at(p) == 0xd503245fu && code_at(o, t, 20))
		p += 4; /* bti c */
	uint32_t adrp = insn_at(p), ldr = insn_at(p + 4);
	if ((adrp & 0x9f00001fu) != 0x90000010u || (ldr & 0xffc003ffu) != 0xf9400211u)
		return t;
	int64_t imm = (int64_t)((uint64_t)(((adrp >> 29) & 3) | (((adrp >> 5) & 0x7ffff) << 2)) << 43) >> 31;
	uintptr_t page = (p & ~(uintptr_t)0xfff) + (uintptr_t)imm;
	uintptr_t to = slot_at(page + ((ldr >> 10) & 0xfff) * 8);
	return to ? to : t;
}
#else
static uintptr_t call_target(const struct object *o, uintptr_t ra)
{
	(void)o;
	(void)ra;
	return 0;
}

static uintptr_t through_plt(uintptr_t t)
{
	return t;
}
#endif

/* Whether the call that returns to ra calls a site (directly, through a PLT stub
 * or a GOT slot). */
static bool calls_site(const struct object *o, uintptr_t ra)
{
	uintptr_t t = call_target(o, ra);
	return t && (in_site(t) || in_site(through_plt(t)));
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
	if (cls != SM_SECRET && o->cls != SM_MACHINERY && have_sites && calls_site(o, pc))
		cls = SM_SECRET;
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

bool sm_route_tagged_object(uintptr_t pc)
{
	if (!__atomic_load_n(&objects, __ATOMIC_ACQUIRE))
		return false;
	pthread_mutex_lock(&table_lock);
	struct object *o = object_at(pc - 1);
	bool tagged = o && o->cls == SM_SECRET;
	pthread_mutex_unlock(&table_lock);
	return tagged;
}

int sm_route_look_through(uintptr_t fn)
{
	uintptr_t lo, hi;
	if (!__atomic_load_n(&objects, __ATOMIC_ACQUIRE) || !have_rules)
		return -1;
	if (!sm_frames_function(fn, &lo, &hi))
		return 0;
	pthread_mutex_lock(&table_lock);
	struct object *o = object_at(fn);
	bool done = false;
	if (o && o->cls != SM_ORDINARY) {
		done = true; /* tagged (its allocations are secret) or machinery already */
	} else if (o) {
		/* looked through already, or named in SECRETMEM_SITES (a site's own
		 * allocations are secret: looking through would lose that) */
		for (size_t i = 0; i < o->nranges && !done; i++)
			done = lo < o->ranges[i].hi && o->ranges[i].lo < hi &&
			       (o->ranges[i].cls == SM_SECRET ||
				(o->ranges[i].lo == lo && o->ranges[i].hi == hi));
		struct range *r = done ? NULL : sm_meta_alloc((o->nranges + 1) * sizeof(*r));
		if (r) {
			/* the old array stays in metadata memory, unused: a lock-free
			 * reader may still hold it */
			if (o->nranges)
				memcpy(r, o->ranges, o->nranges * sizeof(*r));
			r[o->nranges] = (struct range){ lo, hi, SM_MACHINERY, NULL };
			__atomic_store_n(&o->ranges, r, __ATOMIC_RELEASE);
			__atomic_store_n(&o->nranges, o->nranges + 1, __ATOMIC_RELEASE);
			flush_cache();
			done = true;
			sm_debug("%p (%zu bytes) in %s: an allocation function the program gave "
				 "OpenSSL, looked through",
				 (void *)lo, (size_t)(hi - lo), o->path);
		}
	}
	pthread_mutex_unlock(&table_lock);
	return done;
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

/* _Fork (atfork.c), perhaps in a signal handler: never waits. */
bool sm_route_fork_tryprepare(void)
{
	if (pthread_mutex_trylock(&table_lock) != 0)
		return false;
	if (sm_meta_fork_tryprepare())
		return true;
	pthread_mutex_unlock(&table_lock);
	return false;
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
	if (sm_thread_starting)
		return false; /* glibc starting a thread: its bookkeeping, see thread_start.c */
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
		if (__atomic_load_n(&reading, __ATOMIC_ACQUIRE) && pthread_equal(reader, pthread_self()))
			return false; /* libdw, libelf, the demangler: see read_symbols */
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

/* ---- start-up ---- */

/* A rule that matches nothing loaded now is a warning at the default level: a typo
 * (or an unmangled name the demangler cannot place) would otherwise protect
 * nothing without a word. */
static void report_unmatched(void)
{
	/* The program is named: LD_PRELOAD reaches a wrapper too (timeout, env, a
	 * shell), which warns for itself before it starts the program the rule is
	 * for. */
	const char *prog = strrchr(exe_path, '/') ? strrchr(exe_path, '/') + 1 : exe_path;
	lib_seen = sm_meta_alloc((sm_opt.nlibs + 1) * sizeof(bool));
	site_seen = sm_meta_alloc((sm_opt.nsites + 1) * sizeof(bool));
	for (size_t i = 0; i < sm_opt.nlibs; i++) {
		bool hit = strcmp(sm_opt.libs[i], "*") == 0;
		for (size_t k = 0; k < nobjects && !hit; k++)
			hit = objects[k].cls != SM_MACHINERY && object_matches(sm_opt.libs[i], &objects[k]);
		if (lib_seen)
			lib_seen[i] = hit;
		if (!hit)
			sm_warn("SECRETMEM_LIBS pattern %s matches no object loaded now; "
				"it protects nothing unless an object loaded later matches it "
				"(program: %s)",
				sm_opt.libs[i], prog);
	}
	for (size_t i = 0; i < sm_opt.nsites; i++) {
		bool hit = false;
		for (size_t k = 0; k < nobjects && !hit; k++)
			for (size_t r = 0; r < objects[k].nranges && !hit; r++)
				hit = objects[k].ranges[r].rule == &sm_opt.sites[i];
		if (site_seen)
			site_seen[i] = hit;
		if (!hit && !(site_lost && site_lost[i])) /* (lost_inlined said more) */
			sm_warn("SECRETMEM_SITES entry %s%s%s matches no function in the objects loaded now; "
				"it protects nothing unless an object loaded later defines it "
				"(program: %s)",
				sm_opt.sites[i].lib ? sm_opt.sites[i].lib : "",
				sm_opt.sites[i].lib ? ":" : "", sm_opt.sites[i].func, prog);
	}
}

/* The main program (the first object dl_iterate_phdr reports): its file's path. */
static int main_path(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	(void)data;
	struct sm_elf_object eo = { info->dlpi_addr, "", info->dlpi_phdr, info->dlpi_phnum };
	sm_elf_path(&eo, exe_path, sizeof(exe_path));
	return 1;
}

/* Defined by the loader alone, on x86_64 and aarch64 alike (glibc 2.35 moved
 * _dl_find_object into libc, so that one will not do). */
extern void *__tls_get_addr(void *);

/* The loader's load address. AT_BASE is 0 when the program was started as
 * "ld.so ./prog" (the kernel ran ld.so as the program), and a non-PIE main program
 * has load address 0 too, so 0 must never stand for the loader: then it is found
 * as the object that defines __tls_get_addr. */
static uintptr_t ldso_base(void)
{
	uintptr_t b = (uintptr_t)getauxval(AT_BASE);
	return b ? b : sm_object_base((const void *)__tls_get_addr);
}

bool sm_route_init(void)
{
	ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
	exe_path[n > 0 ? n : 0] = '\0';
	/* started from a file deleted since (through /proc/self/exe): its name */
	static const char deleted[] = " (deleted)";
	size_t len = strlen(exe_path);
	if (len > sizeof(deleted) - 1 && strcmp(exe_path + len - (sizeof(deleted) - 1), deleted) == 0)
		exe_path[len - (sizeof(deleted) - 1)] = '\0';
	const char *fn = (const char *)getauxval(AT_EXECFN);
	if (!getauxval(AT_BASE))
		/* started as "ld.so ./prog": /proc/self/exe is the loader, and so is
		 * the name it was started by */
		dl_iterate_phdr(main_path, NULL);
	else if (fn && strlen(fn) < sizeof(exec_name))
		strcpy(exec_name, fn);
	if (exec_name[0] && !absolute_name(exec_name, exec_abs, sizeof(exec_abs)))
		exec_abs[0] = '\0';

	libc_bias = sm_object_base((const void *)gnu_get_libc_version); /* never interposed */
	ldso_bias = ldso_base();
	self_bias = sm_object_base((const void *)sm_route_init);

	for (size_t i = 0; i < sm_opt.nlibs; i++)
		route_all |= strcmp(sm_opt.libs[i], "*") == 0;

	if (sm_opt.nsites)
		sm_debuginfo_load(); /* where inlined copies of sites went */
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
