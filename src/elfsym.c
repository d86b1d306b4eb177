/* SPDX-License-Identifier: MIT */
/*
 * ELF reading (see elfsym.h). Two sources of symbols:
 *
 * - a file, read with pread into anonymous mappings: the section header table,
 *   then each symbol table and its string table. Every offset and size from the
 *   file is checked as "off <= size && len <= size - off", which cannot wrap, and
 *   a short read (the file shrank) ends the table. A mapping of the file would turn
 *   that truncation into SIGBUS in the middle of someone's malloc.
 * - the loaded image: .dynsym found through the dynamic section (DT_SYMTAB,
 *   DT_STRTAB, DT_STRSZ, and the symbol count from DT_HASH or DT_GNU_HASH), read
 *   only where a readable PT_LOAD segment of the object lies.
 *
 * Which file: the one the kernel says is mapped at the object's first segment
 * (/proc/self/maps gives its absolute path, device and inode). A path read later
 * (relative, after a chdir; replaced by a package upgrade) is used only if it is
 * that file: same device and inode, or the same GNU build-id.
 */
#include "config.h"
#include "elfsym.h"
#include "log.h"
#include "secretmem.h" /* SECRETMEM_NOTE_TYPE: the note the header writes */

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#if UINTPTR_MAX == 0xffffffffffffffffu
#define ELF_CLASS ELFCLASS64
#else
#define ELF_CLASS ELFCLASS32
#endif

/* Bounds of what is read from a file: a symbol table of more than 16 M entries or a
 * string table of more than 1 GiB is damage, not a library. */
#define MAX_SHNUM 65536u
#define MAX_TABLE ((size_t)1 << 30)
#define SYM_CHUNK 4096u /* symbols read per pread */

/* off + len within size, without overflow. */
static bool within(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

/* Anonymous memory for a buffer (never malloc: we are the allocator). */
static void *buf_map(size_t size)
{
	void *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void buf_unmap(void *p, size_t size)
{
	if (p)
		munmap(p, size ? size : 1);
}

/* Reads exactly len bytes at off; false on a short read (the file shrank) or error. */
static bool read_at(int fd, void *dst, size_t len, uint64_t off)
{
	char *d = dst;
	while (len) {
		ssize_t n = pread(fd, d, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		d += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return true;
}

/* ---- from a file ---- */

/* Reports the functions of one symbol table whose header is sh (with strtab str). */
static void read_table(int fd, uint64_t fsize, const ElfW(Shdr) *sh, const ElfW(Shdr) *str,
		       uintptr_t bias, sm_elf_func_fn fn, void *ctx)
{
	if (sh->sh_entsize != sizeof(ElfW(Sym)) || str->sh_type != SHT_STRTAB ||
	    !within(sh->sh_offset, sh->sh_size, fsize) || !within(str->sh_offset, str->sh_size, fsize) ||
	    sh->sh_size > MAX_TABLE || str->sh_size > MAX_TABLE || str->sh_size == 0)
		return;
	size_t strsz = (size_t)str->sh_size;
	/* one byte more, always NUL: a name that runs off the table ends there */
	char *names = buf_map(strsz + 1);
	ElfW(Sym) *syms = buf_map(SYM_CHUNK * sizeof(ElfW(Sym)));
	if (!names || !syms || !read_at(fd, names, strsz, str->sh_offset))
		goto out;
	names[strsz] = '\0';
	size_t n = (size_t)(sh->sh_size / sizeof(ElfW(Sym)));
	for (size_t done = 0; done < n;) {
		size_t k = n - done < SYM_CHUNK ? n - done : SYM_CHUNK;
		if (!read_at(fd, syms, k * sizeof(ElfW(Sym)), sh->sh_offset + done * sizeof(ElfW(Sym))))
			break;
		for (size_t i = 0; i < k; i++) {
			const ElfW(Sym) *s = &syms[i];
			unsigned t = ELF64_ST_TYPE(s->st_info);
			if ((t != STT_FUNC && t != STT_GNU_IFUNC) || s->st_shndx == SHN_UNDEF ||
			    s->st_size == 0 || s->st_name >= strsz)
				continue;
			if (s->st_value > UINTPTR_MAX - bias)
				continue;
			uintptr_t lo = bias + (uintptr_t)s->st_value;
			if (s->st_size > UINTPTR_MAX - lo)
				continue;
			fn(ctx, names + s->st_name, lo, lo + (uintptr_t)s->st_size);
		}
		done += k;
	}
out:
	buf_unmap(syms, SYM_CHUNK * sizeof(ElfW(Sym)));
	buf_unmap(names, strsz + 1);
}

bool sm_elf_read_fd(int fd, uintptr_t bias, sm_elf_func_fn fn, void *ctx)
{
	struct stat st;
	ElfW(Ehdr) eh;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(eh) ||
	    !read_at(fd, &eh, sizeof(eh), 0))
		return false;
	uint64_t fsize = (uint64_t)st.st_size;
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELF_CLASS ||
	    eh.e_shentsize != sizeof(ElfW(Shdr)) || eh.e_shoff == 0)
		return false;
	size_t shnum = eh.e_shnum;
	if (shnum == 0) {
		/* extended numbering: the count is in section 0's sh_size */
		ElfW(Shdr) s0;
		if (!within(eh.e_shoff, sizeof(s0), fsize) || !read_at(fd, &s0, sizeof(s0), eh.e_shoff))
			return false;
		shnum = s0.sh_size < MAX_SHNUM ? (size_t)s0.sh_size : 0;
	}
	if (shnum == 0 || shnum > MAX_SHNUM ||
	    !within(eh.e_shoff, (uint64_t)shnum * sizeof(ElfW(Shdr)), fsize))
		return false;
	size_t shsize = shnum * sizeof(ElfW(Shdr));
	ElfW(Shdr) *sh = buf_map(shsize);
	if (!sh)
		return false;
	bool ok = read_at(fd, sh, shsize, eh.e_shoff);
	for (size_t i = 0; ok && i < shnum; i++) {
		if ((sh[i].sh_type == SHT_SYMTAB || sh[i].sh_type == SHT_DYNSYM) &&
		    sh[i].sh_link < shnum && sh[i].sh_link != i)
			read_table(fd, fsize, &sh[i], &sh[sh[i].sh_link], bias, fn, ctx);
	}
	buf_unmap(sh, shsize);
	return ok;
}

/* ---- the loaded image ---- */

/* Readable and aligned for a T of this alignment (a damaged image may be neither). */
static bool readable(const struct sm_elf_object *o, uintptr_t addr, size_t len, size_t align)
{
	return (addr & (align - 1)) == 0 && sm_elf_mapped(o, addr, len, PF_R);
}

bool sm_elf_mapped(const struct sm_elf_object *o, uintptr_t addr, size_t len, unsigned flags)
{
	for (unsigned i = 0; i < o->phnum; i++) {
		const ElfW(Phdr) *ph = &o->phdr[i];
		if (ph->p_type != PT_LOAD || (ph->p_flags & flags) != flags)
			continue;
		uintptr_t lo = o->bias + ph->p_vaddr;
		if (addr >= lo && within(addr - lo, len, ph->p_memsz))
			return true;
	}
	return false;
}

/* A dynamic-section address: glibc relocates them in place on most targets, not on
 * all (and never in the vDSO). Either way, the result must lie in the object. */
static uintptr_t dyn_addr(const struct sm_elf_object *o, uintptr_t v)
{
	if (sm_elf_mapped(o, v, 1, PF_R))
		return v;
	return o->bias + v;
}

/* The number of .dynsym entries from DT_GNU_HASH: one past the highest symbol any
 * bucket's chain reaches. 0 when the table is not readable. */
static size_t gnu_hash_count(const struct sm_elf_object *o, uintptr_t h)
{
	if (!readable(o, h, 16, sizeof(ElfW(Addr))))
		return 0;
	const uint32_t *w = (const uint32_t *)h;
	uint32_t nbuckets = w[0], symoffset = w[1], bloom = w[2];
	uintptr_t buckets = h + 16 + (uintptr_t)bloom * sizeof(ElfW(Addr));
	if (nbuckets == 0 || bloom > (1u << 24) || nbuckets > (1u << 24) ||
	    !readable(o, buckets, (size_t)nbuckets * 4, 4))
		return 0;
	const uint32_t *b = (const uint32_t *)buckets;
	uint32_t max = 0;
	for (uint32_t i = 0; i < nbuckets; i++)
		if (b[i] > max)
			max = b[i];
	if (max < symoffset)
		return symoffset;
	uintptr_t chain = buckets + (uintptr_t)nbuckets * 4;
	for (uint32_t k = max; k - symoffset < (1u << 24); k++) {
		uintptr_t e = chain + (uintptr_t)(k - symoffset) * 4;
		if (!sm_elf_mapped(o, e, 4, PF_R))
			return 0;
		if (*(const uint32_t *)e & 1)
			return (size_t)k + 1;
	}
	return 0;
}

/* The object's dynamic section and its number of entries, if it lies readable in
 * the object; else NULL. */
static const ElfW(Dyn) *dynamic(const struct sm_elf_object *o, size_t *ndyn)
{
	const ElfW(Dyn) *dyn = NULL;
	*ndyn = 0;
	for (unsigned i = 0; i < o->phnum; i++) {
		if (o->phdr[i].p_type == PT_DYNAMIC) {
			dyn = (const ElfW(Dyn) *)(o->bias + o->phdr[i].p_vaddr);
			*ndyn = o->phdr[i].p_memsz / sizeof(*dyn);
		}
	}
	if (!dyn || !readable(o, (uintptr_t)dyn, *ndyn * sizeof(*dyn), sizeof(ElfW(Addr))))
		return NULL;
	return dyn;
}

const char *sm_elf_soname(const struct sm_elf_object *o)
{
	size_t ndyn;
	const ElfW(Dyn) *dyn = dynamic(o, &ndyn);
	if (!dyn)
		return NULL;
	uintptr_t strtab = 0;
	size_t strsz = 0, soname = SIZE_MAX;
	for (size_t i = 0; i < ndyn && dyn[i].d_tag != DT_NULL; i++) {
		switch (dyn[i].d_tag) {
		case DT_STRTAB: strtab = dyn_addr(o, dyn[i].d_un.d_ptr); break;
		case DT_STRSZ: strsz = dyn[i].d_un.d_val; break;
		case DT_SONAME: soname = dyn[i].d_un.d_val; break;
		}
	}
	if (!strtab || soname >= strsz || !sm_elf_mapped(o, strtab, strsz, PF_R))
		return NULL;
	const char *s = (const char *)strtab + soname;
	return s[0] && memchr(s, '\0', strsz - soname) ? s : NULL;
}

bool sm_elf_read_memory(const struct sm_elf_object *o, sm_elf_func_fn fn, void *ctx)
{
	size_t ndyn;
	const ElfW(Dyn) *dyn = dynamic(o, &ndyn);
	if (!dyn)
		return false;
	uintptr_t symtab = 0, strtab = 0, hash = 0, gnu_hash = 0;
	size_t strsz = 0, syment = sizeof(ElfW(Sym));
	for (size_t i = 0; i < ndyn && dyn[i].d_tag != DT_NULL; i++) {
		switch (dyn[i].d_tag) {
		case DT_SYMTAB: symtab = dyn_addr(o, dyn[i].d_un.d_ptr); break;
		case DT_STRTAB: strtab = dyn_addr(o, dyn[i].d_un.d_ptr); break;
		case DT_HASH: hash = dyn_addr(o, dyn[i].d_un.d_ptr); break;
		case DT_GNU_HASH: gnu_hash = dyn_addr(o, dyn[i].d_un.d_ptr); break;
		case DT_STRSZ: strsz = dyn[i].d_un.d_val; break;
		case DT_SYMENT: syment = dyn[i].d_un.d_val; break;
		}
	}
	if (!symtab || !strtab || !strsz || syment != sizeof(ElfW(Sym)) ||
	    !sm_elf_mapped(o, strtab, strsz, PF_R))
		return false;
	size_t n = 0;
	if (hash && readable(o, hash, 8, 4))
		n = ((const uint32_t *)hash)[1];
	else if (gnu_hash)
		n = gnu_hash_count(o, gnu_hash);
	if (n == 0 || n > MAX_TABLE / sizeof(ElfW(Sym)) ||
	    !readable(o, symtab, n * sizeof(ElfW(Sym)), sizeof(ElfW(Addr))))
		return false;
	const ElfW(Sym) *syms = (const ElfW(Sym) *)symtab;
	const char *names = (const char *)strtab;
	for (size_t k = 0; k < n; k++) {
		const ElfW(Sym) *s = &syms[k];
		unsigned t = ELF64_ST_TYPE(s->st_info);
		if ((t != STT_FUNC && t != STT_GNU_IFUNC) || s->st_shndx == SHN_UNDEF ||
		    s->st_size == 0 || s->st_name >= strsz ||
		    !memchr(names + s->st_name, '\0', strsz - s->st_name))
			continue;
		if (s->st_value > UINTPTR_MAX - o->bias)
			continue;
		uintptr_t lo = o->bias + (uintptr_t)s->st_value;
		if (s->st_size > UINTPTR_MAX - lo)
			continue;
		fn(ctx, names + s->st_name, lo, lo + (uintptr_t)s->st_size);
	}
	return true;
}

/* The note of this type and owner (name, namesz bytes with its NUL) in a note
 * area [p, p + size), bounds-checked: its descriptor and descsz, or NULL. */
static const unsigned char *find_note(const unsigned char *p, size_t size, uint32_t type,
				      const char *owner, uint32_t namesz, size_t *descsz)
{
	size_t off = 0;
	while (within(off, sizeof(ElfW(Nhdr)), size)) {
		ElfW(Nhdr) nh; /* copied: a damaged note may be misaligned */
		memcpy(&nh, p + off, sizeof(nh));
		uint64_t nsz = ((uint64_t)nh.n_namesz + 3) & ~(uint64_t)3;
		uint64_t dsz = ((uint64_t)nh.n_descsz + 3) & ~(uint64_t)3;
		uint64_t name = off + sizeof(nh);
		if (!within(name, nsz, size) || !within(name + nsz, dsz, size))
			return NULL;
		if (nh.n_type == type && nh.n_namesz == namesz && memcmp(p + name, owner, namesz) == 0) {
			*descsz = nh.n_descsz;
			return p + name + nsz;
		}
		off = (size_t)(name + nsz + dsz);
	}
	return NULL;
}

/* The NT_GNU_BUILD_ID of a note area [p, p + size) (in memory); its length, 0 if none. */
static size_t find_build_id(const unsigned char *p, size_t size, const unsigned char **id)
{
	size_t n = 0;
	*id = find_note(p, size, NT_GNU_BUILD_ID, "GNU", 4, &n);
	return *id ? n : 0;
}

/* The loaded object's build-id (its PT_NOTE segments, in memory). */
static size_t memory_build_id(const struct sm_elf_object *o, const unsigned char **id)
{
	for (unsigned i = 0; i < o->phnum; i++) {
		const ElfW(Phdr) *ph = &o->phdr[i];
		uintptr_t a = o->bias + ph->p_vaddr;
		if (ph->p_type != PT_NOTE || !sm_elf_mapped(o, a, ph->p_memsz, PF_R))
			continue;
		size_t n = find_build_id((const void *)a, ph->p_memsz, id);
		if (n)
			return n;
	}
	return 0;
}

size_t sm_elf_build_id(const struct sm_elf_object *o, unsigned char *id, size_t size)
{
	const unsigned char *p;
	size_t n = memory_build_id(o, &p);
	if (n > size)
		return 0;
	memcpy(id, p, n);
	return n;
}

/* Whether the file open on fd has this build-id (its PT_NOTE segments). */
static bool file_has_build_id(int fd, const unsigned char *id, size_t idlen)
{
	struct stat st;
	ElfW(Ehdr) eh;
	if (fstat(fd, &st) || !read_at(fd, &eh, sizeof(eh), 0) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_phentsize != sizeof(ElfW(Phdr)) ||
	    eh.e_phnum == 0 || !within(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr)), (uint64_t)st.st_size))
		return false;
	ElfW(Phdr) ph[64];
	unsigned phnum = eh.e_phnum < 64 ? eh.e_phnum : 64;
	if (!read_at(fd, ph, phnum * sizeof(ph[0]), eh.e_phoff))
		return false;
	unsigned char notes[1024];
	for (unsigned i = 0; i < phnum; i++) {
		if (ph[i].p_type != PT_NOTE || !within(ph[i].p_offset, ph[i].p_filesz, (uint64_t)st.st_size))
			continue;
		size_t n = ph[i].p_filesz < sizeof(notes) ? (size_t)ph[i].p_filesz : sizeof(notes);
		const unsigned char *fid;
		size_t flen;
		if (read_at(fd, notes, n, ph[i].p_offset) && (flen = find_build_id(notes, n, &fid)) &&
		    flen == idlen && memcmp(fid, id, idlen) == 0)
			return true;
	}
	return false;
}

/* ---- which file ---- */

static bool hex(const char **s, unsigned long *v)
{
	const char *p = *s;
	unsigned long x = 0;
	for (; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'); p++)
		x = x * 16 + (unsigned long)(*p <= '9' ? *p - '0' : *p - 'a' + 10);
	if (p == *s)
		return false;
	*v = x;
	*s = p;
	return true;
}

/* Parses one /proc/self/maps line: "lo-hi perms offset maj:min inode   path". */
static bool parse_maps_line(const char *l, struct sm_elf_mapping *m)
{
	unsigned long lo, hi, off, maj, min, ino = 0;
	if (!hex(&l, &lo) || *l++ != '-' || !hex(&l, &hi) || *l++ != ' ')
		return false;
	while (*l && *l != ' ')
		l++; /* perms */
	if (*l++ != ' ' || !hex(&l, &off) || *l++ != ' ' || !hex(&l, &maj) || *l++ != ':' ||
	    !hex(&l, &min) || *l++ != ' ')
		return false;
	for (; *l >= '0' && *l <= '9'; l++)
		ino = ino * 10 + (unsigned long)(*l - '0');
	while (*l == ' ')
		l++;
	m->lo = lo;
	m->hi = hi;
	m->major = (unsigned)maj;
	m->minor = (unsigned)min;
	m->inode = ino;
	sm_format(m->path, sizeof(m->path), "%s", l);
	return true;
}

/* The /proc/self/maps line of the mapping holding addr. */
static bool find_mapping(uintptr_t addr, struct sm_elf_mapping *m)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char buf[4096], line[4096 + 128];
	size_t len = 0;
	bool found = false, skip = false;
	ssize_t n;
	while (!found && (n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n && !found; i++) {
			if (buf[i] != '\n') {
				if (len < sizeof(line) - 1)
					line[len++] = buf[i];
				else
					skip = true; /* longer than any path: not ours */
				continue;
			}
			line[len] = '\0';
			if (!skip && parse_maps_line(line, m) && addr >= m->lo && addr < m->hi)
				found = true;
			len = 0;
			skip = false;
		}
	}
	close(fd);
	return found;
}

static bool same_file(int fd, const struct sm_elf_mapping *m)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_ino == m->inode &&
	       major(st.st_dev) == m->major && minor(st.st_dev) == m->minor;
}

/* Opens a regular file without blocking on a FIFO put in its place. */
static int open_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Whether the file on fd is the image o was loaded from: the kernel's dev and inode
 * for the mapping, else (a copy, an overlay file system) the same build-id. */
static bool is_loaded_file(int fd, const struct sm_elf_object *o, const struct sm_elf_mapping *m)
{
	if (m && same_file(fd, m))
		return true;
	const unsigned char *id;
	size_t n = memory_build_id(o, &id);
	return n && file_has_build_id(fd, id, n);
}

static uintptr_t first_segment(const struct sm_elf_object *o)
{
	uintptr_t lo = UINTPTR_MAX;
	for (unsigned i = 0; i < o->phnum; i++)
		if (o->phdr[i].p_type == PT_LOAD && o->bias + o->phdr[i].p_vaddr < lo)
			lo = o->bias + o->phdr[i].p_vaddr;
	return lo;
}

bool sm_elf_path(const struct sm_elf_object *o, char *path, size_t size)
{
	struct sm_elf_mapping m;
	if (!size || !find_mapping(first_segment(o), &m) || m.inode == 0 || m.path[0] != '/')
		return false;
	sm_format(path, size, "%s", m.path);
	return true;
}

bool sm_elf_mapping(const struct sm_elf_object *o, struct sm_elf_mapping *m)
{
	return find_mapping(first_segment(o), m);
}

enum sm_elf_source sm_elf_for_each_func(const struct sm_elf_object *o, sm_elf_func_fn fn,
					void *ctx, char *path, size_t pathsize)
{
	struct sm_elf_mapping m;
	bool have_map = find_mapping(first_segment(o), &m);
	return sm_elf_for_each_func_in(o, have_map ? &m : NULL, fn, ctx, path, pathsize);
}

enum sm_elf_source sm_elf_for_each_func_in(const struct sm_elf_object *o, const struct sm_elf_mapping *map,
					   sm_elf_func_fn fn, void *ctx, char *path, size_t pathsize)
{
	bool have_map = map != NULL;
	if (path && pathsize)
		path[0] = '\0';
	if (have_map && map->inode == 0)
		/* not a file ([vdso]): the image is all there is */
		return sm_elf_read_memory(o, fn, ctx) ? SM_ELF_MEMORY : SM_ELF_NONE;

	/* The kernel's name of the mapping; without /proc, the loader's. */
	const char *name = have_map ? map->path : o->name;
	if (path && pathsize && name[0] == '/')
		sm_format(path, pathsize, "%s", name);
	if (name[0]) {
		int fd = open_file(name);
		if (fd >= 0) {
			bool ok = is_loaded_file(fd, o, map) &&
				  sm_elf_read_fd(fd, o->bias, fn, ctx);
			close(fd);
			if (ok)
				return SM_ELF_FILE;
		}
	}
	if (have_map) {
		char mf[64];
		sm_format(mf, sizeof(mf), "/proc/self/map_files/%lx-%lx", (unsigned long)map->lo,
			  (unsigned long)map->hi);
		int fd = open_file(mf);
		if (fd >= 0) {
			bool ok = sm_elf_read_fd(fd, o->bias, fn, ctx);
			close(fd);
			if (ok) {
				if (path && pathsize)
					sm_format(path, pathsize, "%s", mf);
				return SM_ELF_MAP_FILES;
			}
		}
	}
	if (path && pathsize)
		path[0] = '\0';
	return sm_elf_read_memory(o, fn, ctx) ? SM_ELF_MEMORY : SM_ELF_NONE;
}

/* ---- the annotation note ---- */

bool sm_elf_annotated(const struct sm_elf_object *o)
{
	for (unsigned i = 0; i < o->phnum; i++) {
		const ElfW(Phdr) *ph = &o->phdr[i];
		if (ph->p_type != PT_NOTE || !sm_elf_mapped(o, o->bias + ph->p_vaddr, ph->p_memsz, PF_R))
			continue;
		size_t n;
		if (find_note((const void *)(o->bias + ph->p_vaddr), ph->p_memsz, SECRETMEM_NOTE_TYPE,
			      "secretmem", 10, &n))
			return true;
	}
	return false;
}

/* ---- which object ---- */

unsigned long sm_object_base(const void *addr)
{
#ifdef HAVE__DL_FIND_OBJECT
	struct dl_find_object r;
	if (_dl_find_object((void *)addr, &r) == 0)
		return r.dlfo_link_map ? r.dlfo_link_map->l_addr : 0;
	return 0;
#else
	Dl_info info;
	return dladdr(addr, &info) ? (unsigned long)info.dli_fbase : 0;
#endif
}

/* ---- the function at an address ---- */

struct holder {
	uintptr_t a;
	struct sm_elf_object o;
	bool found;
};

static int find_holder(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct holder *h = arg;
	for (unsigned i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && h->a - lo < ph->p_memsz) {
			h->o = (struct sm_elf_object){ info->dlpi_addr, info->dlpi_name, info->dlpi_phdr,
						       info->dlpi_phnum };
			h->found = true;
			return 1;
		}
	}
	return 0;
}

struct closest {
	uintptr_t a, best_lo;
	char *buf;
	size_t size;
};

static void closest(void *ctx, const char *name, uintptr_t lo, uintptr_t hi)
{
	struct closest *c = ctx;
	if (c->a - lo < hi - lo && lo >= c->best_lo) {
		c->best_lo = lo;
		sm_format(c->buf, c->size, "%s", name);
	}
}

bool sm_elf_name(uintptr_t a, char *func, size_t fsize, char *obj, size_t osize, uintptr_t *offset)
{
	func[0] = '\0';
	sm_format(obj, osize, "?");
	*offset = 0;
	struct holder h = { .a = a };
	dl_iterate_phdr(find_holder, &h);
	if (!h.found)
		return false;
	struct closest c = { a, 0, func, fsize };
	if (sm_elf_for_each_func(&h.o, closest, &c, obj, osize) == SM_ELF_NONE || !obj[0]) {
		if (!sm_elf_path(&h.o, obj, osize))
			sm_format(obj, osize, "%s", h.o.name[0] ? h.o.name : "?");
	}
	*offset = func[0] ? a - c.best_lo : a - h.o.bias;
	return func[0] != '\0';
}
