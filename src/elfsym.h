/* SPDX-License-Identifier: MIT */
/*
 * ELF: the function symbols of a loaded object, its annotation note, its build-id,
 * and which object holds an address. Used by routing (rules by function name) and
 * by the statistics (names of call sites).
 *
 * Everything read from a file or from an object's image is untrusted: every offset
 * and size is checked without overflow against what was really read, files are
 * read with pread (never mmap, which a file truncated under it turns into SIGBUS),
 * and an object's image is read only inside its own readable PT_LOAD segments.
 * Never calls malloc: buffers are anonymous mappings, unmapped before returning.
 */
#ifndef SM_ELFSYM_H
#define SM_ELFSYM_H

#include <link.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Everything declared here is internal to the library (direct, not GOT, access). */
#pragma GCC visibility push(hidden)

/* Called for every defined FUNC (or IFUNC) symbol of non-zero size, at its address
 * once loaded: [lo, hi). name is valid only during the call. */
typedef void (*sm_elf_func_fn)(void *ctx, const char *name, uintptr_t lo, uintptr_t hi);

/* Reads .symtab and .dynsym of the ELF file open on fd (64-bit, either byte order is
 * not supported: native only). Returns false when it is not an ELF file this reader
 * understands or its headers are damaged; symbols of a damaged table are skipped,
 * never read out of bounds. */
bool sm_elf_read_fd(int fd, uintptr_t bias, sm_elf_func_fn fn, void *ctx);

/* A loaded object as dl_iterate_phdr describes it (the program headers stay valid
 * while it is loaded). */
struct sm_elf_object {
	uintptr_t bias;             /* dlpi_addr */
	const char *name;           /* dlpi_name: empty for the main program */
	const ElfW(Phdr) *phdr;
	unsigned phnum;
};

/* Where the symbols of a loaded object were read from. */
enum sm_elf_source {
	SM_ELF_NONE,        /* nowhere: nothing was reported */
	SM_ELF_FILE,        /* the file mapped, checked to be the one loaded */
	SM_ELF_MAP_FILES,   /* /proc/self/map_files: the mapping itself */
	SM_ELF_MEMORY,      /* the loaded image's .dynsym only (no .symtab) */
};

/* A line of /proc/self/maps: a mapping, and the file it maps as the kernel names
 * it (absolute, symbolic links resolved; inode 0 when it maps no file). */
struct sm_elf_mapping {
	uintptr_t lo, hi;
	unsigned major, minor;
	unsigned long inode;
	char path[4096];
};

/* The mapping of o's first segment (one read of /proc/self/maps); false when
 * unknown (no /proc). */
bool sm_elf_mapping(const struct sm_elf_object *o, struct sm_elf_mapping *m);

/* Reports the function symbols of the loaded object o. The file is found through
 * /proc/self/maps (the kernel's name of the mapping itself, absolute even when the
 * object was opened by a relative path) and used only if it is the file mapped
 * (same device and inode, or the same build-id); else /proc/self/map_files (needs
 * CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE); else the .dynsym of the loaded image.
 * path, if not NULL, receives the path of the file read (its absolute path, or
 * the /proc/self/map_files one), "" when symbols came from memory. */
enum sm_elf_source sm_elf_for_each_func(const struct sm_elf_object *o, sm_elf_func_fn fn,
					void *ctx, char *path, size_t pathsize);

/* The same, with the mapping sm_elf_mapping found (NULL: not found): read once for
 * both. */
enum sm_elf_source sm_elf_for_each_func_in(const struct sm_elf_object *o, const struct sm_elf_mapping *map,
					   sm_elf_func_fn fn, void *ctx, char *path, size_t pathsize);

/* The loaded object's DT_SONAME, in its image (valid while it is loaded); NULL when
 * it has none or its dynamic section does not lead to one inside its segments. */
const char *sm_elf_soname(const struct sm_elf_object *o);

/* The absolute path of the file mapped at o's first segment, as the kernel names
 * it (with " (deleted)" when it was unlinked); false when unknown. */
bool sm_elf_path(const struct sm_elf_object *o, char *path, size_t size);

/* The loaded object's GNU build-id (from its PT_NOTE segments) into id; its
 * length, 0 when it has none or it is longer than size. */
size_t sm_elf_build_id(const struct sm_elf_object *o, unsigned char *id, size_t size);

/* The .dynsym of the loaded image alone (what sm_elf_for_each_func falls back to);
 * false when its dynamic section does not lead to one inside its segments. */
bool sm_elf_read_memory(const struct sm_elf_object *o, sm_elf_func_fn fn, void *ctx);

/* Whether [addr, addr + len) lies in one PT_LOAD segment of o with all of flags
 * (PF_R, PF_X): such bytes can be read without a fault while o is loaded. */
bool sm_elf_mapped(const struct sm_elf_object *o, uintptr_t addr, size_t len, unsigned flags);

/* Whether the object carries the SECRETMEM_ANNOTATE_LIBRARY note. */
bool sm_elf_annotated(const struct sm_elf_object *o);

/* The load address of the object that contains addr (its l_addr, dlpi_addr), or 0
 * when none does. _dl_find_object where glibc has it (a few ns, no lock); dladdr,
 * which can take microseconds, elsewhere. Start-up only. */
unsigned long sm_object_base(const void *addr);

/* The function containing address a (from its object's .symtab and .dynsym, so
 * static functions of unstripped objects too) into func, a's offset in it, and the
 * object's path into obj ("?" when no object holds a). When no symbol covers a,
 * func is empty, the offset is from the object's load address and the result is
 * false. Reads files: for reports, never on an allocation path. */
bool sm_elf_name(uintptr_t a, char *func, size_t fsize, char *obj, size_t osize, uintptr_t *offset);


#pragma GCC visibility pop

#endif
