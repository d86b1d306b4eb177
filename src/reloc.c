/* SPDX-License-Identifier: MIT */
/*
 * Relocations (see reloc.h): the object's dynamic section is read from memory
 * (PT_DYNAMIC of its program headers: DT_JMPREL and DT_RELA, DT_SYMTAB, DT_STRTAB),
 * and each JUMP_SLOT, GLOB_DAT or absolute 64-bit relocation against an undefined
 * symbol of the allocation API gets its slot rewritten. x86_64 and aarch64.
 *
 * What a slot holds says how the loader bound it: the shim's function (the normal
 * case), the next allocator's or libc's (RTLD_DEEPBIND: the object's own scope
 * came first), an address inside the object itself (a lazy PLT slot not yet bound),
 * or anything else (another definition, kept).
 *
 * A tagged object's references to the allocating functions the shim looks
 * through (operator new, wcsdup, getline...: tailout.h) go to wrappers that run
 * them in the thread's secret scope, so that its tail calls into them are secret.
 *
 * Runs with the routing table's lock held (called when an object is registered),
 * inside dl_iterate_phdr, so it never calls malloc, and uses no lookup that the
 * loader may not have set up yet at start-up (_dl_find_object is set up after the
 * first malloc): address ranges come from dl_iterate_phdr.
 */
#include "config.h"
#include "reloc.h"
#include "log.h"
#include "pages.h"
#include "tailout.h"

#include <elf.h>
#include <errno.h>
#include <gnu/libc-version.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#define R_SLOT R_X86_64_JUMP_SLOT
#define R_GOT R_X86_64_GLOB_DAT
#define R_ABS R_X86_64_64
#elif defined(__aarch64__)
#define R_SLOT R_AARCH64_JUMP_SLOT
#define R_GOT R_AARCH64_GLOB_DAT
#define R_ABS R_AARCH64_ABS64
#else
#error "reloc.c knows the relocation types of x86_64 and aarch64 only"
#endif
#if UINTPTR_MAX != UINT64_MAX
#error "reloc.c reads 64-bit ELF only"
#endif

void *sm_api_next_malloc;

struct span {
	uintptr_t lo, hi;
};

static bool within(const struct span *s, uintptr_t a)
{
	return a - s->lo < s->hi - s->lo;
}

/* The lowest and highest address of the object's PT_LOAD segments. */
static struct span object_span(const struct dl_phdr_info *info)
{
	struct span s = { UINTPTR_MAX, 0 };
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;
		if (a < s.lo)
			s.lo = a;
		if (a + ph->p_memsz > s.hi)
			s.hi = a + ph->p_memsz;
	}
	if (s.lo >= s.hi)
		s.lo = s.hi = 0;
	return s;
}

/* Where the shim, the next allocator and libc lie; found once (they are never
 * unloaded). dl_iterate_phdr's lock is recursive, so this may run inside it. */
static struct span self_span, next_span, libc_span;
static bool spans_known;

/* What the loader binds each API function to in the global scope: the shim's own
 * function, unless the program defines one (the executable comes first). */
static void *global_binding[32];

/* A non-PIE executable's span: its canonical PLT entries are where every GOT
 * points for a function whose address it takes. */
static struct span exec_span;

static int find_spans(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	(void)data;
	struct span s = object_span(info);
	if (info->dlpi_addr == 0 && s.hi) {
		const ElfW(Ehdr) *eh = (const void *)s.lo;
		if (memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_type == ET_EXEC)
			exec_span = s;
	}
	if (within(&s, (uintptr_t)&find_spans))
		self_span = s;
	if (within(&s, (uintptr_t)sm_api_next_malloc))
		next_span = s;
	if (within(&s, (uintptr_t)&gnu_get_libc_version)) /* never interposed */
		libc_span = s;
	return 0;
}

/* The function of the API named by the max bytes at name (a NUL ends the name
 * within them, else it is none of ours). */
static const struct sm_api_fn *api_fn(const char *name, size_t max)
{
	/* Start-up cost: libcrypto alone has over a thousand symbolic relocations, so
	 * the first two letters turn most names away before the whole name is read. */
	if (max < 2 || !name[0])
		return NULL;
	for (size_t i = 0; i < sm_api_nfns; i++) {
		const char *n = sm_api_fns[i].name;
		if (n[0] != name[0] || n[1] != name[1])
			continue;
		size_t k = 2;
		while (k < max && n[k] && n[k] == name[k])
			k++;
		if (k < max && n[k] == name[k])
			return &sm_api_fns[i];
	}
	return NULL;
}

/* The same for the functions a tagged object's tail calls reach (tailout.h). */
static const struct sm_tail_fn *tail_fn(const char *name, size_t max)
{
	if (max < 2 || !name[0])
		return NULL;
	for (size_t i = 0; i < sm_tail_nfns; i++) {
		const char *n = sm_tail_fns[i].name;
		if (n[0] != name[0] || n[1] != name[1])
			continue;
		size_t k = 2;
		while (k < max && n[k] && n[k] == name[k])
			k++;
		if (k < max && n[k] == name[k])
			return &sm_tail_fns[i];
	}
	return NULL;
}

/* The d_ptr of a dynamic entry as an address. glibc adds the load bias to the
 * entries in place, except where the dynamic section is read-only (the vDSO, some
 * architectures); an address inside the object has been adjusted. */
static uintptr_t dyn_addr(const struct dl_phdr_info *info, const struct span *obj, ElfW(Addr) v)
{
	return within(obj, v) ? v : info->dlpi_addr + v;
}

struct dyn {
	const ElfW(Rela) *rela, *jmprel;
	size_t nrela, njmprel;
	const ElfW(Sym) *symtab;
	const char *strtab;
	size_t strsz;
};

static bool read_dynamic(const struct dl_phdr_info *info, const struct span *obj, struct dyn *d)
{
	const ElfW(Dyn) *dyn = NULL;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const void *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
	if (!dyn)
		return false;
	memset(d, 0, sizeof(*d));
	size_t relasz = 0, pltrelsz = 0, relaent = sizeof(ElfW(Rela)), syment = sizeof(ElfW(Sym));
	size_t relacount = 0;
	ElfW(Sxword) pltrel = DT_RELA;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		switch (dyn->d_tag) {
		case DT_RELA: d->rela = (const void *)dyn_addr(info, obj, dyn->d_un.d_ptr); break;
		case DT_RELASZ: relasz = dyn->d_un.d_val; break;
		case DT_RELACOUNT: relacount = dyn->d_un.d_val; break;
		case DT_RELAENT: relaent = dyn->d_un.d_val; break;
		case DT_JMPREL: d->jmprel = (const void *)dyn_addr(info, obj, dyn->d_un.d_ptr); break;
		case DT_PLTRELSZ: pltrelsz = dyn->d_un.d_val; break;
		case DT_PLTREL: pltrel = (ElfW(Sxword))dyn->d_un.d_val; break;
		case DT_SYMTAB: d->symtab = (const void *)dyn_addr(info, obj, dyn->d_un.d_ptr); break;
		case DT_SYMENT: syment = dyn->d_un.d_val; break;
		case DT_STRTAB: d->strtab = (const void *)dyn_addr(info, obj, dyn->d_un.d_ptr); break;
		case DT_STRSZ: d->strsz = dyn->d_un.d_val; break;
		default: break;
		}
	}
	/* Both architectures use RELA only; anything else is not an object we know. */
	if (!d->symtab || !d->strtab || relaent != sizeof(ElfW(Rela)) ||
	    syment != sizeof(ElfW(Sym)) || pltrel != DT_RELA)
		return false;
	d->nrela = d->rela ? relasz / sizeof(ElfW(Rela)) : 0;
	/* The linker sorts the relative relocations first and counts them
	 * (-z combreloc, the default): none of them names a symbol. */
	if (d->rela && relacount <= d->nrela) {
		d->rela += relacount;
		d->nrela -= relacount;
	}
	d->njmprel = d->jmprel ? pltrelsz / sizeof(ElfW(Rela)) : 0;
	return true;
}

/* The stores waiting for a writable RELRO segment, applied together. */
#define BATCH 64
#define MAX_RW 4
struct patcher {
	const struct dl_phdr_info *info;
	const char *name;
	struct span obj, relro;
	struct span rw[MAX_RW]; /* the writable PT_LOAD segments (RELRO lies in one) */
	unsigned nrw;
	struct { void **slot; void *value; } pending[BATCH];
	unsigned npending;
	struct sm_reloc_result r;
	bool exec;      /* a non-PIE executable (ET_EXEC) */
	bool foreign;   /* a slot is bound to an allocator other than the shim, libc's or the next */
};

static void flush(struct patcher *p)
{
	if (!p->npending)
		return;
	size_t len = p->relro.hi - p->relro.lo;
	if (mprotect((void *)p->relro.lo, len, PROT_READ | PROT_WRITE) != 0) {
		int e = errno;
		if (!p->r.failed)
			sm_warn("cannot make the read-only relocations (RELRO) of %s writable (%s): "
				"%u of its references to the allocation API are not redirected",
				p->name, strerror(e), p->npending);
		p->r.failed = true;
		p->r.kept += p->npending;
		p->npending = 0;
		return;
	}
	for (unsigned i = 0; i < p->npending; i++)
		__atomic_store_n(p->pending[i].slot, p->pending[i].value, __ATOMIC_RELEASE);
	/* What the loader left it: read-only. */
	if (mprotect((void *)p->relro.lo, len, PROT_READ) != 0)
		sm_warn("cannot make the read-only relocations (RELRO) of %s read-only again (%s)",
			p->name, strerror(errno));
	p->npending = 0;
}

static void store(struct patcher *p, void **slot, void *value)
{
	if (!within(&p->relro, (uintptr_t)slot)) {
		__atomic_store_n(slot, value, __ATOMIC_RELEASE);
		return;
	}
	if (p->npending == BATCH)
		flush(p);
	p->pending[p->npending].slot = slot;
	p->pending[p->npending].value = value;
	p->npending++;
}

/* A tagged object's slot for a function its tail calls would leave through:
 * pointed at the wrapper that runs it in a scope, which calls what the slot is
 * bound to, or for a lazy slot what the loader would bind (found at its first
 * call). */
static void patch_tail(struct patcher *p, const ElfW(Rela) *r, const struct sm_tail_fn *fn,
		       void **slot, uintptr_t v)
{
	if ((void *)v == fn->wrapper)
		return;
	if (ELF64_R_TYPE(r->r_info) == R_SLOT && within(&p->obj, v)) {
		sm_tail_lazy(fn, p->obj.lo);
	} else if (!v || within(&self_span, v) || !sm_tail_bind(fn, (void *)v)) {
		sm_debug("object %s: its reference to %s is bound to %p, not the definition "
			 "the shim calls: kept", p->name, fn->name, (void *)v);
		return;
	}
	store(p, slot, fn->wrapper);
	p->r.secret++;
}

static void patch_one(struct patcher *p, const struct dyn *d, const ElfW(Rela) *r, bool secret)
{
	unsigned type = (unsigned)ELF64_R_TYPE(r->r_info);
	if (type != R_SLOT && type != R_GOT && type != R_ABS)
		return;
	/* A pointer into the function (S + A, A != 0) is not a reference to it. */
	if (type != R_SLOT && r->r_addend != 0)
		return;
	const ElfW(Sym) *sym = &d->symtab[ELF64_R_SYM(r->r_info)];
	if (sym->st_name >= d->strsz)
		return;
	/* In a non-PIE executable an undefined function with a value has a canonical
	 * PLT entry: its address is what every other object's GOT holds for the
	 * function, so redirecting the executable's slot would redirect theirs. Its
	 * calls are routed by their return address instead. */
	if (p->exec && sym->st_shndx == SHN_UNDEF && sym->st_value != 0)
		return;
	/* The object defines the function itself (a compat strdup): its references
	 * are ours only where the loader bound them to the shim (interposition). */
	bool own = sym->st_shndx != SHN_UNDEF;
	const char *sname = d->strtab + sym->st_name;
	const struct sm_api_fn *fn = api_fn(sname, d->strsz - sym->st_name);
	/* A tagged object's reference to an allocating function the shim looks
	 * through; one it defines itself allocates through its own references. */
	const struct sm_tail_fn *tail = NULL;
	if (!fn && (!secret || own || !(tail = tail_fn(sname, d->strsz - sym->st_name))))
		return;

	uintptr_t where = p->info->dlpi_addr + r->r_offset;
	bool writable = false;
	for (unsigned i = 0; i < p->nrw && !writable; i++)
		writable = within(&p->rw[i], where);
	/* Not one aligned store, or in a segment the loader left read-only (a text
	 * relocation): left alone. */
	if (!writable || (where & (sizeof(void *) - 1))) {
		p->r.kept += secret;
		return;
	}
	void **slot = (void **)where;
	uintptr_t v = (uintptr_t)__atomic_load_n(slot, __ATOMIC_RELAXED);
	if (tail) {
		patch_tail(p, r, tail, slot, v);
		return;
	}
	void *want = secret ? fn->secret : fn->routed;
	if ((void *)v == want)
		return;
	if (within(&self_span, v)) {
		if (secret) {
			store(p, slot, want);
			p->r.secret++;
		}
	} else if (own) {
		/* Not bound yet (lazy): the resolver would bind it to the shim, or under
		 * RTLD_DEEPBIND to the object's own function, whose calls into the API are
		 * the object's too; so a tagged object's slot may go to the secret entry.
		 * Bound to its own definition: left alone. */
		if (secret && type == R_SLOT && within(&p->obj, v) &&
		    v != p->info->dlpi_addr + sym->st_value) {
			store(p, slot, want);
			p->r.secret++;
		}
	} else if (within(&next_span, v) || within(&libc_span, v)) {
		store(p, slot, want);
		p->r.deep++;
		p->r.secret += secret;
	} else if (type == R_SLOT && within(&p->obj, v)) {
		/* Lazy binding, not bound yet. Redirected only where the resolver would
		 * bind the shim: the global scope's definition is the shim's and no slot
		 * of the object is bound to another allocator (one of its own
		 * dependencies under RTLD_DEEPBIND). Else the resolver decides later. */
		size_t k = (size_t)(fn - sm_api_fns);
		if (!p->foreign && k < sizeof(global_binding) / sizeof(global_binding[0]) &&
		    global_binding[k] == fn->routed) {
			store(p, slot, want);
			p->r.secret += secret;
		}
	} else if (within(&exec_span, v)) {
		/* the executable's canonical PLT entry, which leads to the shim: the calls
		 * are routed by their return address; left alone */
	} else if (secret) {
		p->r.kept++;
		sm_debug("object %s: its reference to %s is bound to %p, not the shim: kept",
			 p->name, sname, (void *)v);
	}
}


void sm_reloc_init(void)
{
	if (spans_known)
		return;
	dl_iterate_phdr(find_spans, NULL);
	for (size_t i = 0; i < sm_api_nfns && i < sizeof(global_binding) / sizeof(global_binding[0]); i++)
		global_binding[i] = sm_global_symbol(sm_api_fns[i].name);
	spans_known = true;
}

/* Whether one of the object's references to the API is bound to a definition
 * that is neither the shim's, libc's, the next allocator's nor the object's own. */
static bool bound_elsewhere(const struct patcher *p, const struct dyn *d)
{
	const ElfW(Rela) *tables[2] = { d->jmprel, d->rela };
	size_t counts[2] = { d->njmprel, d->nrela };
	for (int t = 0; t < 2; t++) {
		for (size_t i = 0; i < counts[t]; i++) {
			const ElfW(Rela) *r = &tables[t][i];
			unsigned type = (unsigned)ELF64_R_TYPE(r->r_info);
			if ((type != R_SLOT && type != R_GOT) || (type == R_GOT && r->r_addend))
				continue;
			const ElfW(Sym) *sym = &d->symtab[ELF64_R_SYM(r->r_info)];
			if (sym->st_name >= d->strsz || sym->st_shndx != SHN_UNDEF ||
			    !api_fn(d->strtab + sym->st_name, d->strsz - sym->st_name))
				continue;
			uintptr_t where = p->info->dlpi_addr + r->r_offset;
			if (!within(&p->obj, where) || (where & (sizeof(void *) - 1)))
				continue;
			uintptr_t v = (uintptr_t)__atomic_load_n((void **)where, __ATOMIC_RELAXED);
			if (!within(&self_span, v) && !within(&next_span, v) &&
			    !within(&libc_span, v) && !within(&p->obj, v) && !within(&exec_span, v))
				return true;
		}
	}
	return false;
}

struct sm_reloc_result sm_reloc_patch(const struct dl_phdr_info *info, const char *name,
				      bool secret)
{
	struct patcher p = { .info = info, .name = name };
	sm_reloc_init(); /* done at start-up, outside the table's lock; here only as a fallback */
	p.obj = object_span(info);
	struct dyn d;
	if (!p.obj.hi || !read_dynamic(info, &p.obj, &d))
		return p.r;
	uintptr_t page = sm_pages_size();
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W) && p.nrw < MAX_RW) {
			uintptr_t a = info->dlpi_addr + ph->p_vaddr;
			p.rw[p.nrw++] = (struct span){ a, a + ph->p_memsz };
		}
		if (ph->p_type != PT_GNU_RELRO)
			continue;
		/* The pages the loader made read-only (as glibc's _dl_protect_relro). */
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;
		p.relro.lo = a & ~(page - 1);
		p.relro.hi = (a + ph->p_memsz) & ~(page - 1);
	}
	const ElfW(Ehdr) *eh = (const void *)p.obj.lo;
	p.exec = memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_type == ET_EXEC;
	p.foreign = bound_elsewhere(&p, &d);
	for (size_t i = 0; i < d.njmprel; i++)
		patch_one(&p, &d, &d.jmprel[i], secret);
	for (size_t i = 0; i < d.nrela; i++)
		patch_one(&p, &d, &d.rela[i], secret);
	flush(&p);

	if (p.r.deep)
		sm_debug("object %s: %u references to the allocation API bound past the shim "
			 "(RTLD_DEEPBIND) now go to it", name, p.r.deep);
	if (secret)
		sm_debug("object %s: %u references to the allocation API go to secret entry points",
			 name, p.r.secret);
	if (secret && p.r.kept && !p.r.failed)
		sm_warn("references to the allocation API in %s are bound to another allocator, "
			"not the shim (%u): what it allocates through them is not secret",
			name, p.r.kept);
	return p.r;
}
