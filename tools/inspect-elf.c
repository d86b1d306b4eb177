/* SPDX-License-Identifier: MIT */
/*
 * The ELF reader of secretmem-inspect (see inspect-elf.h). Reads only what it
 * needs, each piece with its own bounds check: the ELF header, the section
 * header table, then for each SHT_DYNSYM section its symbols and its string
 * table. A check is "off <= size && len <= size - off", never "off + len <=
 * size", which wraps for offsets near 2^64.
 */
#include "config.h"

#include "inspect-elf.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Copies the len bytes at off into dst; false unless all of them are there. */
static bool src_read(const struct ie_src *src, uint64_t off, uint64_t len, void *dst)
{
	if (off > src->size || len > src->size - off)
		return false;
	if (src->buf) {
		memcpy(dst, src->buf + off, (size_t)len);
		return true;
	}
	unsigned char *p = dst;
	while (len > 0) {
		if (off > (uint64_t)INT64_MAX)
			return false;
		ssize_t r = pread(src->fd, p, (size_t)len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false; /* an error, or the file is shorter now */
		p += r;
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return true;
}

/* A table of len bytes at off, in a buffer of its own (freed by the caller). */
static enum ie_result read_table(const struct ie_src *src, uint64_t off, uint64_t len, void **out)
{
	*out = NULL;
	/* checked before the allocation: a damaged size must not cost memory */
	if (len > IE_MAX_TABLE || off > src->size || len > src->size - off)
		return IE_BAD;
	void *p = malloc(len ? (size_t)len : 1);
	if (!p)
		return IE_NOMEM;
	if (!src_read(src, off, len, p)) {
		free(p);
		return IE_BAD;
	}
	*out = p;
	return IE_FOUND;
}

/* One SHT_DYNSYM section and the string table it links to. */
static enum ie_result search_dynsym(const struct ie_src *src, const Elf64_Shdr *sh, const Elf64_Shdr *str,
				    const char *name, struct ie_sym *out)
{
	if (sh->sh_entsize != sizeof(Elf64_Sym) || str->sh_type != SHT_STRTAB)
		return IE_BAD;
	void *symv, *strv;
	enum ie_result r = read_table(src, sh->sh_offset, sh->sh_size - sh->sh_size % sizeof(Elf64_Sym), &symv);
	if (r != IE_FOUND)
		return r;
	r = read_table(src, str->sh_offset, str->sh_size, &strv);
	if (r != IE_FOUND) {
		free(symv);
		return r;
	}
	const Elf64_Sym *sym = symv;
	const char *strtab = strv;
	uint64_t nsym = sh->sh_size / sizeof(Elf64_Sym), strsize = str->sh_size;
	size_t want = strlen(name) + 1; /* with its NUL: a prefix does not match */
	r = IE_NOT_FOUND;
	for (uint64_t k = 0; k < nsym; k++) {
		if (sym[k].st_shndx == SHN_UNDEF || sym[k].st_name >= strsize ||
		    want > strsize - sym[k].st_name || memcmp(strtab + sym[k].st_name, name, want) != 0)
			continue;
		out->value = sym[k].st_value;
		out->size = sym[k].st_size;
		out->type = ELF64_ST_TYPE(sym[k].st_info);
		r = IE_FOUND;
		break;
	}
	free(symv);
	free(strv);
	return r;
}

enum ie_result ie_find_symbol(const struct ie_src *src, const char *name, struct ie_sym *out)
{
	Elf64_Ehdr eh;
	if (!src_read(src, 0, sizeof(eh), &eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB))
		return IE_BAD;
	/* No sections (or extended numbering, which no shared object needs). */
	if (eh.e_shnum == 0)
		return IE_NOT_FOUND;
	if (eh.e_shentsize != sizeof(Elf64_Shdr))
		return IE_BAD;
	void *shv;
	enum ie_result r = read_table(src, eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr), &shv);
	if (r != IE_FOUND)
		return r;
	const Elf64_Shdr *sh = shv;
	r = IE_NOT_FOUND;
	for (unsigned i = 0; i < eh.e_shnum && r == IE_NOT_FOUND; i++) {
		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		if (sh[i].sh_link >= eh.e_shnum) {
			r = IE_BAD;
			break;
		}
		r = search_dynsym(src, &sh[i], &sh[sh[i].sh_link], name, out);
	}
	free(shv);
	return r;
}
