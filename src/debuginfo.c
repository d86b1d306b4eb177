/* SPDX-License-Identifier: MIT */
/*
 * Inlined copies of sites, from DWARF (see debuginfo.h). Every libdw entry point
 * is taken with dlsym from libdw.so.1 (and libelf.so.1, its dependency), so the
 * shim neither links nor loads elfutils unless SECRETMEM_SITES is set. The ELF
 * file is opened with ELF_C_READ (pread as needed, no mapping a shrinking file
 * could turn into SIGBUS).
 */
#include "config.h"
#include "debuginfo.h"
#include "log.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef HAVE_ELFUTILS_LIBDW_H
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <gelf.h>

static struct {
	__typeof__(elf_version) *version;
	__typeof__(elf_begin) *begin;
	__typeof__(elf_end) *end;
	__typeof__(dwarf_begin_elf) *dbegin;
	__typeof__(dwarf_end) *dend;
	__typeof__(dwarf_nextcu) *nextcu;
	__typeof__(dwarf_offdie) *offdie;
	__typeof__(dwarf_attr_integrate) *attr;
	__typeof__(dwarf_formstring) *formstring;
	__typeof__(dwarf_diename) *diename;
	__typeof__(dwarf_ranges) *ranges;
	__typeof__(dwarf_child) *child;
	__typeof__(dwarf_siblingof) *sibling;
	__typeof__(dwarf_tag) *tag;
	__typeof__(dwarf_attr) *attr_own;
	__typeof__(dwarf_formref_die) *formref_die;
	__typeof__(dwarf_formudata) *formudata;
	__typeof__(dwarf_dieoffset) *dieoffset;
	__typeof__(elf_nextscn) *nextscn;
	__typeof__(elf_getshdrstrndx) *shstrndx;
	__typeof__(elf_strptr) *strptr;
	__typeof__(elf_getdata) *getdata;
	__typeof__(elf_compress) *compress;
	__typeof__(gelf_getshdr) *getshdr;
	__typeof__(dwarf_diecu) *diecu;
} dw;
static bool loaded;

bool sm_debuginfo_load(void)
{
	if (loaded)
		return true;
	void *h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return false;
#define SYM(f, name) (dw.f = (__typeof__(dw.f))dlsym(h, name)) != NULL
	bool ok = SYM(version, "elf_version") && SYM(begin, "elf_begin") && SYM(end, "elf_end") &&
		  SYM(dbegin, "dwarf_begin_elf") && SYM(dend, "dwarf_end") && SYM(nextcu, "dwarf_nextcu") &&
		  SYM(offdie, "dwarf_offdie") &&
		  SYM(attr, "dwarf_attr_integrate") && SYM(formstring, "dwarf_formstring") &&
		  SYM(diename, "dwarf_diename") && SYM(ranges, "dwarf_ranges") &&
		  SYM(child, "dwarf_child") && SYM(sibling, "dwarf_siblingof") && SYM(tag, "dwarf_tag") &&
		  SYM(attr_own, "dwarf_attr") && SYM(formref_die, "dwarf_formref_die") &&
		  SYM(formudata, "dwarf_formudata") && SYM(dieoffset, "dwarf_dieoffset") &&
		  SYM(nextscn, "elf_nextscn") && SYM(shstrndx, "elf_getshdrstrndx") && SYM(strptr, "elf_strptr") &&
		  SYM(getdata, "elf_getdata") && SYM(compress, "elf_compress") && SYM(getshdr, "gelf_getshdr") &&
		  SYM(diecu, "dwarf_diecu");
#undef SYM
	if (!ok)
		return false;
	dw.version(EV_CURRENT);
	loaded = true;
	return true;
}

/* The abstract instance of a wanted function the compiler inlined (its DIE says
 * DW_INL_inlined or DW_INL_declared_inlined), known by its DIE's offset, which
 * every copy names as its DW_AT_abstract_origin; whether a copy with code, inlined
 * or out of line, was found. name points into libdw's data, or a names block. */
struct seen {
	Dwarf_Off die;
	const char *name;
	bool inlined, copied;
};

/* Qualified names made from the scopes of DIEs that have no linkage name, in
 * blocks that never move (a seen entry points into them). */
struct names {
	struct names *next;
	size_t used;
	char text[65536 - 2 * sizeof(void *)];
};

/* The qualified name of each declaration a rule's key names, by the address of
 * its DIE's data (unique across a file and its dwz alternate, where offsets are
 * not); a unit whose declarations are in is there too, with an empty name.
 * Open addressing, mmap'd. */
struct qname {
	const void *addr;
	const char *q;
	int wanted; /* whether the walk wants q: 0 not asked yet, 1 yes, -1 no */
};

struct walk {
	const struct sm_elf_object *o;
	const char *const *keys;
	size_t nkeys;
	bool filter, unkeyed;
	bool (*wanted)(void *, const char *);
	sm_inline_fn fn;
	sm_lost_fn lost;
	void *ctx;
	const char *name;
	struct seen *seen; /* mmap'd (what libdw allocates is ordinary; this too) */
	size_t nseen, cap;
	struct names *names; /* mmap'd */
	struct qname *quals; /* mmap'd */
	size_t nquals, qcap;
};

/* Records what the walk learnt of the function whose abstract DIE is at die. When
 * the table would pass 2^20 entries, or without memory, none is judged lost. */
static void note(struct walk *w, Dwarf_Off die, const char *name, bool inlined, bool copied)
{
	size_t i = 0;
	while (i < w->nseen && w->seen[i].die != die)
		i++;
	if (i == w->nseen) {
		if (!w->lost)
			return;
		if (w->nseen == w->cap) {
			size_t cap = w->cap ? 2 * w->cap : 4096 / sizeof(struct seen);
			size_t old = w->cap * sizeof(struct seen), size = cap * sizeof(struct seen);
			void *p = MAP_FAILED;
			if (cap <= (1u << 20))
				p = w->seen ? mremap(w->seen, old, size, MREMAP_MAYMOVE)
					    : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED) {
				w->lost = NULL;
				return;
			}
			w->seen = p;
			w->cap = cap;
		}
		w->seen[w->nseen++] = (struct seen){ die, name, false, false };
	}
	w->seen[i].inlined |= inlined;
	w->seen[i].copied |= copied;
}

/* Whether a DIE has code: a range [lo, hi) inside an executable segment of the
 * object (a copy in a section the linker discarded, --gc-sections, keeps address
 * 0 or a small addend: no code). With fn, reports each range (an inlined copy's)
 * to it. */
static bool has_code(Dwarf_Die *die, struct walk *w, sm_inline_fn fn)
{
	Dwarf_Addr base, lo, hi;
	ptrdiff_t off = 0;
	bool code = false;
	while ((off = dw.ranges(die, off, &base, &lo, &hi)) > 0)
		if (lo < hi && lo <= UINTPTR_MAX - w->o->bias && hi - lo <= UINTPTR_MAX - (w->o->bias + lo) &&
		    sm_elf_mapped(w->o, w->o->bias + (uintptr_t)lo, (size_t)(hi - lo), PF_X)) {
			if (fn)
				fn(w->ctx, w->name, w->o->bias + (uintptr_t)lo, w->o->bias + (uintptr_t)hi);
			code = true;
		}
	return code;
}

/* Whether name, a DIE's name, is one of the walk's keys (the last identifier of
 * a C++ rule): "tkey<int>" and a destructor's "~Guard" are "tkey" and "Guard". */
static bool is_key(const struct walk *w, const char *name)
{
	if (name[0] == '~')
		name++;
	size_t n = strcspn(name, "<");
	for (size_t k = 0; k < w->nkeys; k++)
		if (strlen(w->keys[k]) == n && strncmp(w->keys[k], name, n) == 0)
			return true;
	return false;
}

/* Whether the walk may want die's function by a qualified name it has no
 * linkage name for: its name is a key (or an operator, when some rule has no
 * key). */
static bool may_qualify(const struct walk *w, const char *name)
{
	return is_key(w, name) || (w->unkeyed && strncmp(name, "operator", 8) == 0);
}

/* Appends s (n bytes) to out (size size) at *k; false if it does not fit. */
static bool put(char *out, size_t size, size_t *k, const char *s, size_t n)
{
	if (n >= size - *k)
		return false;
	memcpy(out + *k, s, n);
	*k += n;
	out[*k] = '\0';
	return true;
}

/* A copy of q (k bytes) that lives until the walk ends; NULL without memory. */
static const char *keep(struct walk *w, const char *q, size_t k)
{
	struct names *b = w->names;
	if (k >= sizeof(b->text))
		return NULL;
	if (!b || sizeof(b->text) - b->used <= k) {
		b = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (b == MAP_FAILED)
			return NULL;
		b->next = w->names;
		b->used = 0;
		w->names = b;
	}
	char *out = b->text + b->used;
	memcpy(out, q, k + 1);
	b->used += k + 1;
	return out;
}

static struct qname *qslot(struct qname *t, size_t cap, const void *addr)
{
	size_t i = ((uintptr_t)addr >> 3) & (cap - 1);
	while (t[i].addr && t[i].addr != addr)
		i = (i + 1) & (cap - 1);
	return &t[i];
}

/* Records q as the qualified name of the DIE at addr; false without memory. */
static bool qput(struct walk *w, const void *addr, const char *q)
{
	if (2 * (w->nquals + 1) > w->qcap) {
		size_t cap = w->qcap ? 2 * w->qcap : 256; /* a power of two */
		struct qname *t = mmap(NULL, cap * sizeof(*t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (t == MAP_FAILED)
			return false;
		for (size_t i = 0; i < w->qcap; i++)
			if (w->quals[i].addr)
				*qslot(t, cap, w->quals[i].addr) = w->quals[i];
		if (w->quals)
			munmap(w->quals, w->qcap * sizeof(*w->quals));
		w->quals = t;
		w->qcap = cap;
	}
	struct qname *e = qslot(w->quals, w->qcap, addr);
	if (!e->addr)
		w->nquals++;
	*e = (struct qname){ addr, q, 0 };
	return true;
}

static struct qname *qget(const struct walk *w, const void *addr)
{
	if (!w->qcap)
		return NULL;
	struct qname *e = qslot(w->quals, w->qcap, addr);
	return e->addr ? e : NULL;
}

/* Records the qualified names of the functions declared under die, whose scope's
 * name is prefix (plen bytes, "crypto::(anonymous namespace)::"), that the walk
 * may want by one: in namespaces and classes, not in functions (a local class
 * has no name a rule can write). A function at namespace scope that is
 * DW_AT_external with no linkage name is extern "C": its name is its own. */
static void scan_scopes(Dwarf_Die *die, struct walk *w, char *prefix, size_t size, size_t plen,
			bool in_class, int depth)
{
	Dwarf_Die c;
	if (depth > 64 || dw.child(die, &c) != 0)
		return;
	do {
		int tag = dw.tag(&c);
		Dwarf_Attribute a;
		const char *s = dw.diename(&c);
		size_t k = plen;
		if (tag == DW_TAG_namespace || tag == DW_TAG_class_type || tag == DW_TAG_structure_type ||
		    tag == DW_TAG_union_type) {
			if (!s && tag == DW_TAG_namespace)
				s = "(anonymous namespace)";
			/* not the C++ library's namespaces, most of a unit's
			 * declarations: a rule names the program's functions, and
			 * the library's it could name have linkage names */
			bool lib = plen == 0 && s && (strcmp(s, "std") == 0 || strcmp(s, "__gnu_cxx") == 0);
			if (s && !lib && put(prefix, size, &k, s, strlen(s)) && put(prefix, size, &k, "::", 2))
				scan_scopes(&c, w, prefix, size, k, tag != DW_TAG_namespace, depth + 1);
		} else if (tag == DW_TAG_subprogram && s && plen && !dw.attr_own(&c, DW_AT_linkage_name, &a) &&
			   (in_class || !dw.attr_own(&c, DW_AT_external, &a)) && may_qualify(w, s) &&
			   put(prefix, size, &k, s, strlen(s))) {
			const char *q = keep(w, prefix, k);
			if (q)
				qput(w, c.addr, q);
		}
		prefix[plen] = '\0';
	} while (dw.sibling(&c, &c) == 0);
}

/* The name c++filt would print, without the parameters, of a C++ function whose
 * DIE has a name but no linkage name (GCC gives none to a static function or one
 * of an anonymous namespace): its namespaces' and classes' names, then its own,
 * "crypto::(anonymous namespace)::hidden_key", from its declaration's place in
 * its unit. Each unit is scanned once, the first time one of its functions is
 * asked for. NULL for a function at file scope or in a function, or extern "C",
 * and for one the walk does not want. */
static const char *qualified_name(Dwarf_Die *die, struct walk *w)
{
	Dwarf_Die d = *die, cu;
	Dwarf_Attribute a;
	/* the declaration: the definition of a member or of a namespace's function
	 * written outside its braces is at file scope and names it */
	for (int i = 0; i < 8; i++) {
		if (!dw.attr_own(&d, DW_AT_specification, &a) && !dw.attr_own(&d, DW_AT_abstract_origin, &a))
			break;
		if (!dw.formref_die(&a, &d))
			return NULL;
	}
	struct qname *e = qget(w, d.addr);
	if (!e) {
		if (!dw.diecu(&d, &cu, NULL, NULL) || qget(w, cu.addr) || !qput(w, cu.addr, ""))
			return NULL;
		char prefix[1024];
		prefix[0] = '\0';
		scan_scopes(&cu, w, prefix, sizeof(prefix), 0, false, 0);
		if (!(e = qget(w, d.addr)))
			return NULL;
	}
	/* asked once for each function, not for each of its copies */
	if (!e->wanted)
		e->wanted = w->wanted(w->ctx, e->q) ? 1 : -1;
	return e->wanted > 0 ? e->q : NULL;
}

/* The name of the function of DIE die if the walk wants it, else NULL: its
 * linkage name, else its name, through DW_AT_abstract_origin and
 * DW_AT_specification (dwarf_attr_integrate); or, for a function known by its
 * name alone that is the last identifier of a rule (crypto::hidden_key), its
 * qualified name. */
static const char *wanted_name(Dwarf_Die *die, struct walk *w)
{
	Dwarf_Attribute a;
	const char *name = NULL;
	bool linkage = dw.attr(die, DW_AT_linkage_name, &a) && (name = dw.formstring(&a));
	if (!linkage && !(name = dw.diename(die)))
		return NULL;
	if (w->wanted(w->ctx, name))
		return name;
	if (linkage || !may_qualify(w, name))
		return NULL;
	return qualified_name(die, w);
}

/* Every inlined copy in the tree under die whose abstract origin is a wanted
 * function (noted with the wanted abstract instances and out-of-line copies, for
 * the functions lost), whichever unit the origin is in: with -flto the abstract function
 * lives in the unit of its own source file and the copies in the unit the link
 * made, referenced with DW_FORM_ref_addr (dwarf_func_inline_instances looks in
 * the origin's own unit only). depth bounds the recursion against bad input. */
static void inlined_under(Dwarf_Die *die, struct walk *w, int depth)
{
	Dwarf_Die c;
	if (depth > 64 || dw.child(die, &c) != 0)
		return;
	do {
		int tag = dw.tag(&c);
		Dwarf_Attribute a;
		Dwarf_Die origin;
		const char *name;
		if (tag == DW_TAG_subprogram && dw.attr_own(&c, DW_AT_inline, &a)) {
			/* the abstract instance: GCC and clang say "inlined" once the
			 * inliner made a copy (DWARF 5, 3.3.8.1) */
			Dwarf_Word how;
			if (dw.formudata(&a, &how) == 0 && (how == DW_INL_inlined || how == DW_INL_declared_inlined) &&
			    (name = wanted_name(&c, w)))
				note(w, dw.dieoffset(&c), name, true, false);
		} else if ((tag == DW_TAG_inlined_subroutine || tag == DW_TAG_subprogram) &&
			   dw.attr_own(&c, DW_AT_abstract_origin, &a) && dw.formref_die(&a, &origin) &&
			   (name = wanted_name(&origin, w))) {
			/* a copy: inlined (its ranges are the site's), or out of line (the
			 * function itself, or a clone, which its symbol covers) */
			w->name = name;
			bool code = has_code(&c, w, tag == DW_TAG_inlined_subroutine ? w->fn : NULL);
			note(w, dw.dieoffset(&origin), name, false, code);
		}
		inlined_under(&c, w, depth + 1);
	} while (dw.sibling(&c, &c) == 0);
}

/* Whether the sections that hold every name a DIE can have (.debug_str,
 * .debug_line_str, and .debug_info for names stored inline) contain none of the
 * keys: then no DIE names a wanted function, and walking the units (most of the
 * cost: a -dbg package's debug file of a system library is megabytes once
 * decompressed) would find nothing. False, to be safe, for a file whose names may
 * live elsewhere (a dwz alternate or DWARF 5 supplementary file, .zdebug
 * sections, split DWARF) or one it cannot read. */
static bool names_none(Elf *elf, const struct walk *w)
{
	size_t strndx;
	if (!w->filter || dw.shstrndx(elf, &strndx) != 0)
		return false;
	bool info = false;
	for (Elf_Scn *scn = dw.nextscn(elf, NULL); scn; scn = dw.nextscn(elf, scn)) {
		GElf_Shdr sh;
		const char *name;
		if (!dw.getshdr(scn, &sh) || !(name = dw.strptr(elf, strndx, sh.sh_name)))
			return false;
		if (strcmp(name, ".gnu_debugaltlink") == 0 || strcmp(name, ".debug_sup") == 0 ||
		    strncmp(name, ".zdebug", 7) == 0 ||
		    strcmp(name, ".debug_str.dwo") == 0 || strcmp(name, ".debug_info.dwo") == 0)
			return false;
		bool is_info = strcmp(name, ".debug_info") == 0;
		if (!is_info && strcmp(name, ".debug_str") != 0 && strcmp(name, ".debug_line_str") != 0)
			continue;
		if (sh.sh_type == SHT_NOBITS)
			continue;
		/* decompressed in place, as libdw would (it then finds it done) */
		if ((sh.sh_flags & SHF_COMPRESSED) && dw.compress(scn, 0, 0) < 0)
			return false;
		Elf_Data *data = dw.getdata(scn, NULL);
		if (!data)
			return false;
		for (size_t k = 0; k < w->nkeys; k++)
			if (data->d_buf && memmem(data->d_buf, data->d_size, w->keys[k], strlen(w->keys[k])))
				return false;
		info |= is_info;
	}
	return info;
}

/* Whether the file open on fd, named file, has DWARF; if so, reports the
 * instances. */
static bool read_fd(int fd, const char *file, struct walk *w)
{
	Elf *elf = dw.begin(fd, ELF_C_READ, NULL);
	if (!elf)
		return false;
	if (names_none(elf, w)) {
		sm_debug("the debug information of %s names no SECRETMEM_SITES function: not walked", file);
		dw.end(elf);
		return true;
	}
	Dwarf *d = dw.dbegin(elf, DWARF_C_READ, NULL);
	if (!d) {
		dw.end(elf);
		return false;
	}
	Dwarf_Off off = 0, next;
	size_t hsize;
	while (dw.nextcu(d, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu;
		if (dw.offdie(d, off + hsize, &cu))
			inlined_under(&cu, w, 0);
		off = next;
	}
	for (size_t i = 0; w->lost && i < w->nseen; i++)
		if (w->seen[i].inlined && !w->seen[i].copied)
			w->lost(w->ctx, w->seen[i].name);
	if (w->seen)
		munmap(w->seen, w->cap * sizeof(struct seen));
	w->seen = NULL;
	while (w->names) {
		struct names *b = w->names;
		w->names = b->next;
		munmap(b, sizeof(*b));
	}
	if (w->quals)
		munmap(w->quals, w->qcap * sizeof(*w->quals));
	w->quals = NULL;
	w->nquals = w->qcap = 0;
	w->nseen = w->cap = 0;
	dw.dend(d);
	dw.end(elf);
	return true;
}

enum sm_debuginfo sm_debuginfo_inlined(const struct sm_elf_object *o, const char *path,
				       const char *const *keys, size_t nkeys, bool filter,
				       bool unkeyed, bool (*wanted)(void *ctx, const char *name),
				       sm_inline_fn fn, sm_lost_fn lost, void *ctx)
{
	if (!loaded)
		return SM_DEBUGINFO_NO_LIBDW;
	struct walk w = { .o = o, .keys = keys, .nkeys = nkeys, .filter = filter, .unkeyed = unkeyed,
			  .wanted = wanted, .fn = fn, .lost = lost, .ctx = ctx };
	bool read = false;
	if (path && path[0] == '/') {
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0) {
			read = read_fd(fd, path, &w);
			close(fd);
		}
	}
	unsigned char id[64];
	size_t n;
	if (!read && (n = sm_elf_build_id(o, id, sizeof(id))) >= 2) {
		char dbg[64 + 2 * sizeof(id)];
		size_t k = sm_format(dbg, sizeof(dbg), "/usr/lib/debug/.build-id/%02x/", id[0]);
		for (size_t i = 1; i < n && k + 3 < sizeof(dbg); i++)
			k += sm_format(dbg + k, sizeof(dbg) - k, "%02x", id[i]);
		sm_format(dbg + k, sizeof(dbg) - k, ".debug");
		int fd = open(dbg, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0) {
			read = read_fd(fd, dbg, &w);
			close(fd);
		}
	}
	return read ? SM_DEBUGINFO_READ : SM_DEBUGINFO_NONE;
}

#else /* no libdw headers at build time */

bool sm_debuginfo_load(void)
{
	return false;
}

enum sm_debuginfo sm_debuginfo_inlined(const struct sm_elf_object *o, const char *path,
				       const char *const *keys, size_t nkeys, bool filter,
				       bool unkeyed, bool (*wanted)(void *ctx, const char *name),
				       sm_inline_fn fn, sm_lost_fn lost, void *ctx)
{
	(void)o;
	(void)filter;
	(void)unkeyed;
	(void)path;
	(void)keys;
	(void)nkeys;
	(void)wanted;
	(void)fn;
	(void)lost;
	(void)ctx;
	return SM_DEBUGINFO_NO_LIBDW;
}

#endif
