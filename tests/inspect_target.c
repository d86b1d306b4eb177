/* SPDX-License-Identifier: MIT */
/*
 * inspect_target: a hostile subject for inspect.bats, the process that
 * secretmem-inspect, run by root, must not be fooled or hurt by.
 *
 *   inspect_target craft KIND FILE   writes a damaged ELF object to FILE (KIND:
 *                                    shoff-wrap, dynsym-wrap, strtab-wrap,
 *                                    noterm, truncated) and maps it
 *   inspect_target map FILE          maps FILE (any name, any contents)
 *   inspect_target forge             rewrites the shim's exported live
 *                                    statistics (run under the shim with
 *                                    SECRETMEM_STATS=1)
 *   inspect_target protnone A B      reads file A into an ordinary page that it
 *                                    then makes PROT_NONE, and file B into a block
 *                                    allocated in a secretmem_scope (secret under
 *                                    the shim)
 *
 * Each prints "PID n", the blocks it holds as "NAME secret=0|1 addr=0x...", then
 * READY, and waits in pause() until killed. Files are mapped PROT_READ,
 * MAP_PRIVATE at offset 0, as the loader maps an object's first segment.
 *
 * Built as distributions build (-O2 -g): nothing here depends on frames.
 */
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secretmem.h"

#define BLK 256

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static void fill_from(char *p, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, p, BLK) <= 0)
		die(path);
	close(fd);
}

/* A secret block by annotation (no rule, so no frame to keep, any build flags). */
static char *load_secret(const char *path)
{
	secretmem_scope_begin();
	char *p = calloc(1, BLK);
	secretmem_scope_end();
	if (p)
		fill_from(p, path);
	return p;
}

static void map_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st))
		die(path);
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	close(fd);
	printf("file secret=0 addr=%p\n", p);
}

/*
 * An ELF header and four section headers: null, .dynsym (one symbol), .dynstr,
 * .shstrtab; then the tables. KIND damages one offset so that offset + size
 * wraps around 2^64 (the inspector once checked "offset + size > file size"),
 * or leaves a name without its NUL at the end of the file, or cuts the file.
 */
static void craft(const char *kind, const char *path)
{
	enum { SHNUM = 4, SHOFF = sizeof(Elf64_Ehdr), SYMOFF = SHOFF + SHNUM * sizeof(Elf64_Shdr),
	       STROFF = SYMOFF + 2 * sizeof(Elf64_Sym), FILESIZE = 4096 };
	static unsigned char img[FILESIZE];
	static const char dynstr[] = "\0secretmem_impl_live";
	Elf64_Ehdr *eh = (void *)img;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_DYN;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_shentsize = sizeof(Elf64_Shdr);
	eh->e_shnum = SHNUM;
	eh->e_shoff = SHOFF;
	Elf64_Shdr *sh = (void *)(img + SHOFF);
	sh[1] = (Elf64_Shdr){ .sh_type = SHT_DYNSYM, .sh_offset = SYMOFF, .sh_size = 2 * sizeof(Elf64_Sym),
			      .sh_link = 2, .sh_entsize = sizeof(Elf64_Sym) };
	sh[2] = (Elf64_Shdr){ .sh_type = SHT_STRTAB, .sh_offset = STROFF, .sh_size = sizeof(dynstr) };
	sh[3] = (Elf64_Shdr){ .sh_type = SHT_STRTAB, .sh_offset = STROFF, .sh_size = 1 };
	Elf64_Sym *sym = (void *)(img + SYMOFF);
	sym[1] = (Elf64_Sym){ .st_name = 1, .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT),
			      .st_shndx = 3, .st_value = 64, .st_size = 128 };
	memcpy(img + STROFF, dynstr, sizeof(dynstr));
	size_t size = FILESIZE;
	if (strcmp(kind, "shoff-wrap") == 0) {
		/* the table "ends" at 64 + 256: just before the file's start */
		eh->e_shoff = (uint64_t)0 - SHNUM * sizeof(Elf64_Shdr) + 64;
	} else if (strcmp(kind, "dynsym-wrap") == 0) {
		sh[1].sh_offset = (uint64_t)1 << 63;
		sh[1].sh_size = ((uint64_t)1 << 63) + 2 * sizeof(Elf64_Sym);
	} else if (strcmp(kind, "strtab-wrap") == 0) {
		sh[2].sh_offset = (uint64_t)1 << 63;
		sh[2].sh_size = ((uint64_t)1 << 63) + sizeof(dynstr);
	} else if (strcmp(kind, "noterm") == 0) {
		/* the name runs to the last byte of the file, with no NUL */
		memset(img + FILESIZE - 8, 's', 8);
		sh[2].sh_offset = FILESIZE - 8;
		sh[2].sh_size = 8;
		sym[1].st_name = 0;
	} else if (strcmp(kind, "truncated") == 0) {
		size = SYMOFF - 10; /* the section headers are cut */
	} else if (strcmp(kind, "valid") != 0) {
		fprintf(stderr, "inspect_target: unknown kind %s\n", kind);
		exit(2);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, img, size) != (ssize_t)size || close(fd))
		die(path);
	map_file(path);
}

/* What a process that wants to fool the inspector writes into the shim's exported
 * statistics: a backend that closes the JSON string and sets "shim_loaded" again
 * (a JSON reader keeps the last value of a repeated key), a mode the shim has not,
 * counts beyond any address space, and counter addresses that point nowhere. */
static void forge(void)
{
	struct fake {
		char magic[16];
		uint64_t mode;
		char backend[32];
		uint64_t allocs, frees;
		uint64_t addr[7];
	};
	struct fake *l = dlsym(RTLD_DEFAULT, "secretmem_impl_live");
	if (!l || memcmp(l->magic, "secretmem-live", 14) != 0) {
		fprintf(stderr, "inspect_target: no secretmem_impl_live (run under the shim with SECRETMEM_STATS=1)\n");
		exit(2);
	}
	l->mode = 99;
	snprintf(l->backend, sizeof(l->backend), "%s", "\", \"shim_loaded\": 0, \"a\": \"\033[2J");
	l->allocs = UINT64_MAX;
	l->frees = 1;
	for (int i = 0; i < 7; i++)
		l->addr[i] = (uint64_t)1 << 62 | (uint64_t)i << 3;
	printf("forged secret=0 addr=%p\n", (void *)l);
}

static void protnone(const char *plain, const char *secret)
{
	long page = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	fill_from(p, plain);
	if (mprotect(p, (size_t)page, PROT_NONE))
		die("mprotect");
	char *s = load_secret(secret);
	if (!s)
		die("calloc");
	printf("none secret=0 addr=%p\n", (void *)p);
	printf("secret secret=%d addr=%p\n", secretmem_is_secret(s), (void *)s);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "craft") == 0)
		printf("PID %d\n", (int)getpid()), craft(argv[2], argv[3]);
	else if (argc == 3 && strcmp(argv[1], "map") == 0)
		printf("PID %d\n", (int)getpid()), map_file(argv[2]);
	else if (argc == 2 && strcmp(argv[1], "forge") == 0)
		printf("PID %d\n", (int)getpid()), forge();
	else if (argc == 4 && strcmp(argv[1], "protnone") == 0)
		printf("PID %d\n", (int)getpid()), protnone(argv[2], argv[3]);
	else {
		fprintf(stderr, "usage: inspect_target craft KIND FILE | map FILE | forge | protnone A B\n");
		return 2;
	}
	printf("READY\n");
	fflush(stdout);
	for (;;)
		pause();
}
