/* SPDX-License-Identifier: MIT */
/*
 * secretmem-inspect: what secret memory a running process holds.
 *
 * Reads /proc/PID/smaps: is the shim loaded, how much secret memory is mapped and
 * resident, in how many mappings. When the process runs with SECRETMEM_STATS, the
 * shim keeps a snapshot of its counters in the exported object secretmem_impl_live
 * (see src/stats.h): found through the shim's .dynsym, read from /proc/PID/mem.
 * With --find, scans every page of the process that can be read through
 * /proc/PID/mem for byte strings, the check a user makes that a secret really is
 * out of reach; secret pages answer EIO.
 *
 * Root runs this against processes it does not trust, so everything that comes
 * from the process is untrusted input: file names (printed escaped, never opened
 * by a path the process controls unless the file opened is the one mapped), the
 * mapped shim file (read with pread, every bound overflow-checked, inspect-elf.c),
 * and the live statistics (each field validated, and marked in the output as
 * reported by the process, as against measured from outside).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <elf.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#ifdef HAVE_LINUX_OPENAT2_H
#include <linux/openat2.h>
#endif

#include "inspect-elf.h"
#include "options.h"
#include "stats.h"

struct needle {
	unsigned char *bytes;
	size_t len;
	const char *text;
	unsigned long hits;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: secretmem-inspect [--json] [--find HEX]... [--find-file FILE]... PID\n"
		"\n"
		"Shows the secret memory (memfd_secret) that process PID holds: whether\n"
		"libsecretmem-preload is loaded, how much secret memory is mapped and\n"
		"resident, and in how many mappings; and, when it runs with SECRETMEM_STATS,\n"
		"its live statistics (secret allocations, live and peak bytes), which the\n"
		"process reports about itself and the output marks as such.\n"
		"\n"
		"  --json            machine-readable output\n"
		"  --find HEX        scan every page of PID that can be read for these bytes\n"
		"                    (hex digits), PROT_NONE pages too; exit status 3 if\n"
		"                    found anywhere\n"
		"  --find-file FILE  the same for the contents of FILE\n"
		"  --help, --version\n"
		"\n"
		"Needs permission to read /proc/PID/smaps (same user, or root); --find\n"
		"needs ptrace access (root, or same user with ptrace_scope 0).\n"
		"Exit status: 0 done, 1 cannot read the process, 2 bad usage, 3 a --find\n"
		"string was found.\n");
}

/* ---- output of bytes that come from the process ---- */

/* Text: printable ASCII as is, a backslash doubled, every other byte \xNN, so that
 * no byte of a file name reaches the terminal as a control sequence. */
static void put_text(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", stdout);
		else if (*p >= 0x20 && *p < 0x7f)
			putchar(*p);
		else
			printf("\\x%02x", *p);
	}
}

/* JSON: a string literal; bytes that are not printable ASCII are \u00NN (each
 * byte read as Latin-1), so that the output is valid JSON, whatever the bytes. */
static void put_json(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p >= 0x20 && *p < 0x7f)
			putchar(*p);
		else
			printf("\\u%04x", *p);
	}
	putchar('"');
}

/* ---- what to search for ---- */

static int hexval(int c)
{
	if (isdigit(c))
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool parse_hex(const char *s, struct needle *n)
{
	size_t len = strlen(s);
	if (len == 0 || len % 2)
		return false;
	n->bytes = malloc(len / 2);
	if (!n->bytes)
		return false;
	for (size_t i = 0; i < len; i += 2) {
		int a = hexval((unsigned char)s[i]), b = hexval((unsigned char)s[i + 1]);
		if (a < 0 || b < 0)
			return false;
		n->bytes[i / 2] = (unsigned char)(a << 4 | b);
	}
	n->len = len / 2;
	n->text = s;
	return true;
}

static bool read_file(const char *path, struct needle *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	size_t cap = 4096, len = 0;
	unsigned char *b = malloc(cap);
	for (size_t r; b && (r = fread(b + len, 1, cap - len, f)) > 0;) {
		len += r;
		if (len == cap) {
			unsigned char *nb = realloc(b, cap *= 2);
			if (!nb)
				free(b);
			b = nb;
		}
	}
	fclose(f);
	if (!b || len == 0) {
		free(b);
		return false;
	}
	n->bytes = b;
	n->len = len;
	n->text = path;
	return true;
}

/* ---- the process's mappings (/proc/PID/smaps) ---- */

struct mapping {
	uint64_t lo, hi, off, ino;
	unsigned maj, min;
	char perms[5];
	char *name; /* as the kernel shows it; chosen by whoever named the file */
	unsigned long long size_kb, rss_kb, swap_kb, locked_kb;
};

struct maps {
	struct mapping *m;
	size_t n, cap;
};

/* A header line of smaps: "lo-hi perms offset maj:min inode [name]". */
static bool parse_header(const char *line, struct mapping *m)
{
	int name_at = 0;
	if (!isxdigit((unsigned char)line[0]) ||
	    sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n", &m->lo, &m->hi,
		   m->perms, &m->off, &m->maj, &m->min, &m->ino, &name_at) != 7 ||
	    name_at == 0 || m->lo >= m->hi || strlen(m->perms) != 4)
		return false;
	const char *name = line + name_at;
	size_t len = strcspn(name, "\n");
	m->name = strndup(name, len);
	return m->name != NULL;
}

static void free_maps(struct maps *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		free(ms->m[i].name);
	free(ms->m);
	ms->m = NULL;
	ms->n = ms->cap = 0;
}

static int read_maps(pid_t pid, struct maps *ms)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	struct mapping *cur = NULL;
	int ret = 0;
	/* getline, not a fixed buffer: the tail of a split line must never be read
	 * as a line of its own. */
	while (getline(&line, &cap, f) > 0) {
		struct mapping m = { 0 };
		if (parse_header(line, &m)) {
			if (ms->n == ms->cap) {
				size_t nc = ms->cap ? ms->cap * 2 : 64;
				struct mapping *nm = realloc(ms->m, nc * sizeof(*nm));
				if (!nm) {
					free(m.name);
					ret = -1;
					break;
				}
				ms->m = nm;
				ms->cap = nc;
			}
			ms->m[ms->n] = m;
			cur = &ms->m[ms->n++];
			continue;
		}
		if (!cur)
			continue;
		unsigned long long kb;
		if (sscanf(line, "Size: %llu kB", &kb) == 1)
			cur->size_kb = kb;
		else if (sscanf(line, "Rss: %llu kB", &kb) == 1)
			cur->rss_kb = kb;
		else if (sscanf(line, "Swap: %llu kB", &kb) == 1)
			cur->swap_kb = kb;
		else if (sscanf(line, "Locked: %llu kB", &kb) == 1)
			cur->locked_kb = kb;
	}
	free(line);
	fclose(f);
	return ret;
}

/* memfd_secret files have this name (the kernel's); an ordinary file called
 * /tmp/x/secretmem is not secret memory. */
static bool is_secret_mapping(const struct mapping *m)
{
	return strcmp(m->name, "/secretmem (deleted)") == 0;
}

struct summary {
	const struct mapping *shim; /* the shim's mapping at file offset 0 */
	unsigned long mappings;
	unsigned long long size_kb, rss_kb, locked_kb;
	unsigned long readable, unreadable;
	unsigned long long scanned, unreadable_bytes;
};

static void summarize(const struct maps *ms, struct summary *s)
{
	for (size_t i = 0; i < ms->n; i++) {
		const struct mapping *m = &ms->m[i];
		if (is_secret_mapping(m)) {
			s->mappings++;
			s->size_kb += m->size_kb;
			s->rss_kb += m->rss_kb;
			s->locked_kb += m->locked_kb;
		}
		if (!s->shim && m->off == 0 && strstr(m->name, "libsecretmem-preload.so"))
			s->shim = m;
	}
}

/* ---- the shim's live statistics (secretmem_impl_live) ---- */

/* A regular file whose device and inode are those of mapping m, or -1. */
static int check_file(int fd, const struct mapping *m)
{
	struct stat st;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_dev != makedev(m->maj, m->min) ||
	    (uint64_t)st.st_ino != m->ino) {
		close(fd);
		return -1;
	}
	return fd;
}

/* An O_PATH descriptor for name, resolved from dirfd (AT_FDCWD, or the process's
 * root directory, which then stands for "/"), following no symbolic link at all
 * where the kernel has openat2(2) (5.6 and later): the name comes from the
 * kernel's view of the mapping, which holds none, so a symlink on the way is one
 * the process put there since. Elsewhere only a final symlink is refused. */
static int open_path(int dirfd, const char *name)
{
#if defined(HAVE_LINUX_OPENAT2_H) && defined(SYS_openat2)
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | (dirfd == AT_FDCWD ? 0 : RESOLVE_IN_ROOT),
	};
	int fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
		return fd; /* EPERM: a seccomp filter that does not know openat2 */
#endif
	return openat(dirfd, dirfd == AT_FDCWD ? name : name + 1, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

/* Opens the file the process maps at m, never another one. map_files/ gives the
 * mapped file itself (it needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE, so root
 * only). Otherwise by the name the kernel shows, which the process controls (a
 * FIFO or a symlink can be put at "PATH (deleted)", a directory on the way can
 * become a symlink): the name is opened O_PATH (no open of a device or FIFO, no
 * blocking, open_path), and reopened for reading only when it is a regular file
 * with the mapping's device and inode. */
static int open_mapped(pid_t pid, const struct mapping *m)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, m->lo, m->hi);
	int fd = check_file(open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), m);
	if (fd >= 0 || m->name[0] != '/')
		return fd;
	/* by name, as the inspector sees the file system, then as the process does */
	snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
	int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int dirs[2] = { AT_FDCWD, root };
	for (int i = 0; i < 2 && fd < 0; i++) {
		if (dirs[i] == -1)
			continue;
		int p = check_file(open_path(dirs[i], m->name), m);
		if (p < 0)
			continue;
		char self[64];
		snprintf(self, sizeof(self), "/proc/self/fd/%d", p);
		fd = check_file(open(self, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), m);
		close(p);
	}
	if (root >= 0)
		close(root);
	return fd;
}

enum live_state { LIVE_NONE, LIVE_NOFILE, LIVE_BADFILE, LIVE_OFF, LIVE_DENIED, LIVE_OK };

/* The fields of the live statistics; a field whose value cannot be right is
 * marked invalid (and shown as such, never as a number). */
enum { F_MODE, F_BACKEND, F_ALLOCS, F_FREES, F_LIVE, F_PEAK, F_TOUCHED, F_MAPPED, F_CHUNKS,
       F_ENOMEM, F_LIMIT, F_COUNT };
static const char *const field_names[F_COUNT] = {
	"mode", "backend", "allocs", "frees", "live_bytes", "peak_bytes", "touched_bytes",
	"mapped_bytes", "chunks", "enomem", "limit",
};

struct live {
	struct sm_live hdr;
	uint64_t v[F_COUNT]; /* F_ALLOCS.. */
	bool invalid[F_COUNT];
	unsigned ninvalid;
};

/* No byte count or address in a process exceeds the user address space (57 bits
 * with 5-level page tables); a larger value was not written by the shim. */
#define MAX_PLAUSIBLE ((uint64_t)1 << 57)

static bool read_u64(int mem, uint64_t addr, uint64_t *v)
{
	return addr && addr < MAX_PLAUSIBLE && addr % 8 == 0 &&
	       pread(mem, v, sizeof(*v), (off_t)addr) == (ssize_t)sizeof(*v);
}

static void set_invalid(struct live *l, int f)
{
	if (!l->invalid[f])
		l->ninvalid++;
	l->invalid[f] = true;
}

/* The backend is one of the shim's names: lower-case words, '_', ' ', '(' and ')'. */
static bool valid_backend(const char *b, size_t size)
{
	size_t len = strnlen(b, size);
	if (len == 0 || len == size)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || strchr("_ ()", b[i])))
			return false;
	return true;
}

/* The shim's live statistics, when it exposes them: the exported block, then the
 * arena counters it points to, read as they are now. All of it is written by the
 * process, which may be hostile: checked for range, never trusted. */
static enum live_state read_live(pid_t pid, const struct summary *s, struct live *l)
{
	memset(l, 0, sizeof(*l));
	if (!s->shim)
		return LIVE_NONE;
	int fd = open_mapped(pid, s->shim);
	if (fd < 0)
		return LIVE_NOFILE;
	struct stat st;
	struct ie_sym sym;
	struct ie_src src = { .fd = fd };
	enum ie_result er = IE_BAD;
	if (fstat(fd, &st) == 0) {
		src.size = (uint64_t)st.st_size;
		er = ie_find_symbol(&src, "secretmem_impl_live", &sym);
	}
	close(fd);
	if (er == IE_NOT_FOUND)
		return LIVE_OFF;
	if (er != IE_FOUND || sym.type != STT_OBJECT || sym.size < sizeof(struct sm_live) ||
	    sym.value >= MAX_PLAUSIBLE || s->shim->lo + sym.value >= MAX_PLAUSIBLE)
		return LIVE_BADFILE;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	int mem = open(path, O_RDONLY | O_CLOEXEC);
	if (mem < 0)
		return LIVE_DENIED;
	enum live_state r = LIVE_DENIED;
	struct sm_live *h = &l->hdr;
	if (pread(mem, h, sizeof(*h), (off_t)(s->shim->lo + sym.value)) == (ssize_t)sizeof(*h)) {
		r = LIVE_OFF;
		if (memcmp(h->magic, SM_LIVE_MAGIC, sizeof(SM_LIVE_MAGIC)) == 0) {
			r = LIVE_OK;
			l->v[F_ALLOCS] = h->allocs;
			l->v[F_FREES] = h->frees;
			const uint64_t addr[] = { h->addr_live, h->addr_peak, h->addr_touched, h->addr_mapped,
						  h->addr_chunks, h->addr_enomem, h->addr_limit };
			/* No arena yet (no secret memory used): the counters stay zero. */
			for (int f = F_LIVE; f <= F_LIMIT && h->addr_live; f++)
				if (!read_u64(mem, addr[f - F_LIVE], &l->v[f]))
					set_invalid(l, f);
		}
	}
	close(mem);
	if (r != LIVE_OK)
		return r;
	if (h->mode >= SM_MODE_COUNT)
		set_invalid(l, F_MODE);
	if (!valid_backend(h->backend, sizeof(h->backend)))
		set_invalid(l, F_BACKEND);
	if ((int64_t)l->v[F_LIVE] < 0 && (int64_t)l->v[F_LIVE] > -(int64_t)MAX_PLAUSIBLE)
		l->v[F_LIVE] = 0; /* thread caches not yet published */
	for (int f = F_ALLOCS; f <= F_LIMIT; f++)
		if (l->v[f] >= MAX_PLAUSIBLE)
			set_invalid(l, f);
	return r;
}

/* ---- --find ---- */

struct scanner {
	int mem, pagemap;
	struct needle *nd;
	size_t nn, overlap;
	unsigned char *buf;
	size_t step;
	uint64_t page;
	bool json;
	unsigned long long read_bytes, failed_bytes; /* of the current mapping */
};

/* Counts the needles that start in buf[0, starts) (and end within len). */
static void search(struct scanner *sc, size_t len, size_t starts, uint64_t addr)
{
	for (size_t k = 0; k < sc->nn; k++) {
		struct needle *n = &sc->nd[k];
		const unsigned char *p = sc->buf;
		size_t left = len;
		while (left >= n->len) {
			const unsigned char *q = memmem(p, left, n->bytes, n->len);
			if (!q || (size_t)(q - sc->buf) >= starts)
				break;
			n->hits++;
			if (!sc->json && n->hits <= 8) {
				printf("found ");
				put_text(n->text);
				printf(" at 0x%" PRIx64 "\n", addr + (uint64_t)(q - sc->buf));
			}
			left -= (size_t)(q - p) + 1;
			p = q + 1;
		}
	}
}

/* Scans [lo, hi) in steps, each read with an overlap so that a needle across a
 * step boundary is still seen (and counted once). A page that cannot be read
 * (EIO: secret memory) is skipped and counted. */
static void scan_range(struct scanner *sc, uint64_t lo, uint64_t hi)
{
	uint64_t pos = lo;
	while (pos < hi) {
		size_t want = (size_t)(hi - pos < sc->step + sc->overlap ? hi - pos : sc->step + sc->overlap);
		ssize_t r = pread(sc->mem, sc->buf, want, (off_t)pos);
		if (r <= 0) {
			uint64_t next = (pos | (sc->page - 1)) + 1;
			if (next > hi || next < pos)
				next = hi;
			sc->failed_bytes += next - pos;
			pos = next;
			continue;
		}
		/* A full read with more to come: the matches that start in the overlap
		 * are the next step's. */
		bool more = (size_t)r == want && hi - pos > want;
		size_t advance = more ? sc->step : (size_t)r;
		search(sc, (size_t)r, advance, pos);
		sc->read_bytes += advance;
		pos += advance;
	}
}

/* Scans the pages of [lo, hi) that are resident or swapped out (pagemap bits 63
 * and 62); a page that is neither holds nothing the process wrote. Where pagemap
 * cannot be read (any more), the rest is scanned whole. */
static void scan_sparse(struct scanner *sc, uint64_t lo, uint64_t hi)
{
	enum { BATCH = 512 };
	uint64_t ent[BATCH];
	uint64_t run = 0; /* start of the pending run of present pages, if in_run */
	bool in_run = false;
	for (uint64_t a = lo; a < hi;) {
		uint64_t pages = (hi - a) / sc->page < BATCH ? (hi - a) / sc->page : BATCH;
		ssize_t want = (ssize_t)(pages * sizeof(ent[0]));
		if (pages == 0 ||
		    pread(sc->pagemap, ent, (size_t)want, (off_t)(a / sc->page * sizeof(ent[0]))) != want) {
			scan_range(sc, in_run ? run : a, hi);
			return;
		}
		for (uint64_t i = 0; i < pages; i++, a += sc->page) {
			bool present = (ent[i] >> 63 & 1) || (ent[i] >> 62 & 1);
			if (present && !in_run) {
				run = a;
				in_run = true;
			} else if (!present && in_run) {
				scan_range(sc, run, a);
				in_run = false;
			}
		}
	}
	if (in_run)
		scan_range(sc, run, hi);
}

/* Scans every mapping that can be read through /proc/PID/mem: for root that is
 * PROT_NONE memory too (the kernel reads it for a ptracer). Of an anonymous
 * private mapping, and of a private mapping without read permission, only the
 * resident and swapped pages are read: the rest hold nothing the process wrote,
 * reading them would fault them in, and a reservation can span gigabytes (the
 * shim's arena reserves 64 GiB PROT_NONE). */
static int scan(pid_t pid, const struct maps *ms, struct needle *nd, size_t nn, struct summary *s, bool json)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	struct scanner sc = { .nd = nd, .nn = nn, .json = json, .step = 1 << 20 };
	sc.mem = open(path, O_RDONLY | O_CLOEXEC);
	if (sc.mem < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	sc.pagemap = open(path, O_RDONLY | O_CLOEXEC);
	sc.page = (uint64_t)sysconf(_SC_PAGESIZE);
	for (size_t k = 0; k < nn; k++)
		if (nd[k].len - 1 > sc.overlap)
			sc.overlap = nd[k].len - 1;
	sc.buf = malloc(sc.step + sc.overlap);
	for (size_t i = 0; sc.buf && i < ms->n; i++) {
		const struct mapping *m = &ms->m[i];
		if (strncmp(m->name, "[vvar", 5) == 0 || strcmp(m->name, "[vsyscall]") == 0)
			continue;
		bool readable = m->perms[0] == 'r', shared = m->perms[3] == 's';
		bool anon = m->ino == 0 && m->maj == 0 && m->min == 0;
		/* Only the pages the process has: all of a shared mapping (its pages
		 * may be another process's writes) and of a readable file mapping (as
		 * a reader in the process would see it). */
		bool sparse = !shared && (anon || !readable);
		if (sparse && m->rss_kb == 0 && m->swap_kb == 0)
			continue; /* nothing in it */
		sc.read_bytes = sc.failed_bytes = 0;
		if (sparse && sc.pagemap >= 0)
			scan_sparse(&sc, m->lo, m->hi);
		else
			scan_range(&sc, m->lo, m->hi);
		s->scanned += sc.read_bytes;
		s->unreadable_bytes += sc.failed_bytes;
		if (sc.failed_bytes && !sc.read_bytes)
			s->unreadable++;
		else
			s->readable++;
	}
	int ret = sc.buf ? 0 : -1;
	free(sc.buf);
	if (sc.pagemap >= 0)
		close(sc.pagemap);
	close(sc.mem);
	return ret;
}

/* ---- output ---- */

/* A counter of the live statistics in JSON: its value, or null when invalid. */
static void json_field(const struct live *l, int f, bool first)
{
	printf("%s\"%s\": ", first ? "" : ", ", field_names[f]);
	if (l->invalid[f])
		printf("null");
	else if (f == F_MODE)
		put_json(sm_mode_name(l->hdr.mode));
	else if (f == F_BACKEND)
		put_json(l->hdr.backend);
	else
		printf("%" PRIu64, l->v[f]);
}

static void print_json(long pid, const struct summary *s, enum live_state ls, const struct live *l,
		       const struct needle *nd, size_t nn)
{
	printf("{\n  \"pid\": %ld,\n  \"shim_loaded\": %s,\n  \"shim_path\": ", pid, s->shim ? "true" : "false");
	if (s->shim)
		put_json(s->shim->name);
	else
		printf("null");
	printf(",\n  \"secret_mappings\": %lu,\n  \"secret_mapped_bytes\": %llu,\n"
	       "  \"secret_resident_bytes\": %llu,\n  \"secret_locked_bytes\": %llu",
	       s->mappings, s->size_kb * 1024, s->rss_kb * 1024, s->locked_kb * 1024);
	printf(",\n  \"stats\": ");
	if (ls == LIVE_OK) {
		putchar('{');
		for (int f = 0; f < F_COUNT; f++)
			json_field(l, f, f == 0);
		putchar('}');
	} else {
		printf("null");
	}
	printf(",\n  \"stats_invalid\": ");
	if (ls == LIVE_OK) {
		putchar('[');
		bool first = true;
		for (int f = 0; f < F_COUNT; f++)
			if (l->invalid[f]) {
				printf("%s\"%s\"", first ? "" : ", ", field_names[f]);
				first = false;
			}
		putchar(']');
	} else {
		printf("null");
	}
	if (nn) {
		printf(",\n  \"scan\": {\"readable_mappings\": %lu, \"unreadable_mappings\": %lu, "
		       "\"bytes_scanned\": %llu, \"bytes_unreadable\": %llu, \"found\": [",
		       s->readable, s->unreadable, s->scanned, s->unreadable_bytes);
		for (size_t k = 0; k < nn; k++)
			printf("%s{\"needle\": %zu, \"hits\": %lu}", k ? ", " : "", k, nd[k].hits);
		printf("]}");
	}
	printf(",\n  \"sources\": {\"measured\": [\"shim_loaded\", \"shim_path\", \"secret_mappings\", "
	       "\"secret_mapped_bytes\", \"secret_resident_bytes\", \"secret_locked_bytes\"%s], "
	       "\"reported_by_process\": [\"stats\"]}\n}\n",
	       nn ? ", \"scan\"" : "");
}

/* A line of the live statistics in text: the value, or "invalid". */
static void text_u64(const struct live *l, int f)
{
	if (l->invalid[f])
		printf("invalid");
	else
		printf("%" PRIu64, l->v[f]);
}

static void print_text(long pid, const struct summary *s, enum live_state ls, const struct live *l,
		       const struct needle *nd, size_t nn)
{
	printf("process:           %ld\n", pid);
	printf("-- measured by secretmem-inspect (/proc/%ld/smaps", pid);
	if (nn)
		printf(", /proc/%ld/mem", pid);
	printf("):\n");
	printf("shim loaded:       %s", s->shim ? "yes (" : "no");
	if (s->shim) {
		put_text(s->shim->name);
		putchar(')');
	}
	putchar('\n');
	printf("secret mappings:   %lu\n", s->mappings);
	printf("secret mapped:     %llu KiB\n", s->size_kb);
	printf("secret resident:   %llu KiB\n", s->rss_kb);
	if (nn) {
		printf("scanned:           %llu bytes in %lu readable mappings (%lu unreadable); "
		       "%llu bytes unreadable\n",
		       s->scanned, s->readable, s->unreadable, s->unreadable_bytes);
		for (size_t k = 0; k < nn; k++) {
			printf("%-18s ", k ? "" : "search results:");
			put_text(nd[k].text);
			printf(": %lu\n", nd[k].hits);
		}
	}
	if (ls == LIVE_NONE)
		return;
	printf("-- reported by the process itself (secretmem_impl_live), not verified:\n");
	switch (ls) {
	case LIVE_OK:
		printf("mode, backend:     %s, ", l->invalid[F_MODE] ? "invalid" : sm_mode_name(l->hdr.mode));
		if (l->invalid[F_BACKEND])
			printf("invalid");
		else
			put_text(l->hdr.backend);
		printf("\nsecret allocs:     ");
		text_u64(l, F_ALLOCS);
		printf(" (frees ");
		text_u64(l, F_FREES);
		printf(")\nsecret live/peak:  ");
		text_u64(l, F_LIVE);
		printf(" / ");
		text_u64(l, F_PEAK);
		printf(" bytes\npages touched:     ");
		text_u64(l, F_TOUCHED);
		printf(" bytes in ");
		text_u64(l, F_CHUNKS);
		printf(" chunks (limit ");
		text_u64(l, F_LIMIT);
		printf(")\nrefused (ENOMEM):  ");
		text_u64(l, F_ENOMEM);
		putchar('\n');
		if (l->ninvalid)
			printf("invalid fields:    %u (values no shim writes: the process altered them)\n",
			       l->ninvalid);
		break;
	case LIVE_OFF:
		printf("live stats:        not exposed (start the process with SECRETMEM_STATS set)\n");
		break;
	case LIVE_DENIED:
		printf("live stats:        cannot read /proc/%ld/mem (needs ptrace access)\n", pid);
		break;
	case LIVE_NOFILE:
		printf("live stats:        cannot open the mapped shim file (it is not a regular file "
		       "with the mapping's inode, and /proc/%ld/map_files needs CAP_SYS_ADMIN)\n", pid);
		break;
	case LIVE_BADFILE:
		printf("live stats:        the mapped shim file is not a valid ELF object of the shim\n");
		break;
	case LIVE_NONE:
		break;
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "find", required_argument, NULL, 'f' },
		{ "find-file", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	struct needle *nd = calloc((size_t)argc, sizeof(*nd));
	size_t nn = 0;
	int c, ret = 0;
	struct maps ms = { 0 };
	if (!nd) {
		perror("secretmem-inspect");
		return 1;
	}
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'f':
			if (!parse_hex(optarg, &nd[nn])) {
				fprintf(stderr, "secretmem-inspect: --find needs hex digits (two per byte), not \"%s\"\n", optarg);
				ret = 2;
				goto out;
			}
			nn++;
			break;
		case 'F':
			errno = 0;
			if (!read_file(optarg, &nd[nn])) {
				if (errno)
					fprintf(stderr, "secretmem-inspect: cannot read %s: %s\n", optarg, strerror(errno));
				else
					fprintf(stderr, "secretmem-inspect: %s is empty: nothing to search for\n", optarg);
				ret = 2;
				goto out;
			}
			nn++;
			break;
		case 'h': usage(stdout); goto out;
		case 'V': printf("secretmem-inspect %s\n", PACKAGE_VERSION); goto out;
		default: usage(stderr); ret = 2; goto out;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		ret = 2;
		goto out;
	}
	char *end;
	errno = 0;
	long pid = strtol(argv[optind], &end, 10);
	if (!isdigit((unsigned char)argv[optind][0]) || errno || *end || pid <= 0 || pid > 0x7fffffff) {
		fprintf(stderr, "secretmem-inspect: \"%s\" is not a process ID\n", argv[optind]);
		ret = 2;
		goto out;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld", pid);
	if (access(path, F_OK)) {
		fprintf(stderr, "secretmem-inspect: no process %ld\n", pid);
		ret = 1;
		goto out;
	}
	if (read_maps((pid_t)pid, &ms)) {
		fprintf(stderr, "secretmem-inspect: cannot read /proc/%ld/smaps: %s%s\n", pid, strerror(errno),
			errno == EACCES || errno == EPERM ? " (run as the process's user or as root)" : "");
		ret = 1;
		goto out;
	}
	struct summary s = { 0 };
	summarize(&ms, &s);
	if (nn && scan((pid_t)pid, &ms, nd, nn, &s, json)) {
		fprintf(stderr, "secretmem-inspect: cannot read /proc/%ld/mem: %s%s\n", pid, strerror(errno),
			errno == EACCES || errno == EPERM ? " (--find needs root or ptrace access)" : "");
		ret = 1;
		goto out;
	}
	for (size_t k = 0; k < nn; k++)
		if (nd[k].hits > 0)
			ret = 3;
	struct live live;
	enum live_state ls = read_live((pid_t)pid, &s, &live);
	if (json)
		print_json(pid, &s, ls, &live, nd, nn);
	else
		print_text(pid, &s, ls, &live, nd, nn);
out:
	free_maps(&ms);
	for (int k = 0; k < argc; k++)
		free(nd[k].bytes);
	free(nd);
	return ret;
}
