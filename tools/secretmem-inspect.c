/* SPDX-License-Identifier: MIT */
/*
 * secretmem-inspect: what secret memory a running process holds.
 *
 * Reads /proc/PID/smaps: is the shim loaded, how much secret memory is mapped and
 * resident, in how many mappings. When the process runs with SECRETMEM_STATS, the
 * shim keeps a snapshot of its counters in the exported object secretmem_impl_live
 * (see src/stats.h): found through the shim's .dynsym, read from /proc/PID/mem.
 * With --find, scans every readable
 * mapping of the process through /proc/PID/mem for byte strings, the check a user
 * makes that a secret really is out of reach; secret pages answer EIO.
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
#include <sys/mman.h>
#include <sys/stat.h>

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
		"its live statistics (secret allocations, live and peak bytes).\n"
		"\n"
		"  --json            machine-readable output\n"
		"  --find HEX        scan every readable mapping of PID for these bytes\n"
		"                    (hex digits); exit status 3 if found anywhere\n"
		"  --find-file FILE  the same for the contents of FILE\n"
		"  --help, --version\n"
		"\n"
		"Needs permission to read /proc/PID/smaps (same user, or root); --find\n"
		"needs ptrace access (root, or same user with ptrace_scope 0).\n"
		"Exit status: 0 done, 1 cannot read the process, 2 bad usage, 3 a --find\n"
		"string was found.\n");
}

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
		if (len == cap)
			b = realloc(b, cap *= 2);
	}
	fclose(f);
	if (!b || len == 0)
		return false;
	n->bytes = b;
	n->len = len;
	n->text = path;
	return true;
}

struct summary {
	bool shim;
	char shim_path[4096];
	uint64_t shim_base;         /* start of the shim's mapping at file offset 0 */
	unsigned long mappings;
	unsigned long long size_kb, rss_kb, locked_kb;
	unsigned long readable, unreadable;
	unsigned long long scanned;
};

static int read_smaps(pid_t pid, struct summary *s)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[8192];
	bool in_secret = false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char name[4096] = "";
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %4095[^\n]", &lo, &hi, name) >= 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in_secret = strstr(name, "/secretmem") != NULL;
			if (in_secret)
				s->mappings++;
			unsigned long long off = 1;
			sscanf(line, "%*x-%*x %*s %llx", &off);
			if (strstr(name, "libsecretmem-preload.so") && !s->shim && off == 0) {
				s->shim = true;
				s->shim_base = lo;
				snprintf(s->shim_path, sizeof(s->shim_path), "%s", name);
			}
			continue;
		}
		unsigned long long kb;
		if (!in_secret)
			continue;
		if (sscanf(line, "Size: %llu kB", &kb) == 1)
			s->size_kb += kb;
		else if (sscanf(line, "Rss: %llu kB", &kb) == 1)
			s->rss_kb += kb;
		else if (sscanf(line, "Locked: %llu kB", &kb) == 1)
			s->locked_kb += kb;
	}
	fclose(f);
	return 0;
}

/* The address of the symbol in the object file path, relative to its load base. */
static uint64_t symbol_offset(const char *path, const char *symbol)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || (size_t)st.st_size < sizeof(Elf64_Ehdr)) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	size_t size = (size_t)st.st_size;
	const unsigned char *img = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (img == MAP_FAILED)
		return 0;
	uint64_t found = 0;
	const Elf64_Ehdr *eh = (const void *)img;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > size)
		goto out;
	const Elf64_Shdr *sh = (const void *)(img + eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum && !found; i++) {
		if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_link >= eh->e_shnum)
			continue;
		const Elf64_Shdr *str = &sh[sh[i].sh_link];
		if (sh[i].sh_offset + sh[i].sh_size > size || str->sh_offset + str->sh_size > size)
			continue;
		const Elf64_Sym *sym = (const void *)(img + sh[i].sh_offset);
		for (size_t k = 0; k < sh[i].sh_size / sizeof(*sym); k++)
			if (sym[k].st_name < str->sh_size &&
			    strcmp((const char *)img + str->sh_offset + sym[k].st_name, symbol) == 0) {
				found = sym[k].st_value;
				break;
			}
	}
out:
	munmap((void *)img, size);
	return found;
}

enum live_state { LIVE_NONE, LIVE_OFF, LIVE_DENIED, LIVE_OK };

struct live {
	struct sm_live hdr;
	uint64_t live, peak, touched, mapped, chunks, enomem, limit;
};

static bool read_u64(int mem, uint64_t addr, uint64_t *v)
{
	return addr && pread(mem, v, sizeof(*v), (off_t)addr) == (ssize_t)sizeof(*v);
}

/* The shim's live statistics, when it exposes them: the exported block, then the
 * arena counters it points to, read as they are now. */
static enum live_state read_live(pid_t pid, const struct summary *s, struct live *l)
{
	memset(l, 0, sizeof(*l));
	if (!s->shim)
		return LIVE_NONE;
	char path[4200];
	uint64_t off = symbol_offset(s->shim_path, "secretmem_impl_live");
	if (!off) {
		snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, s->shim_path);
		off = symbol_offset(path, "secretmem_impl_live");
	}
	if (!off)
		return LIVE_NONE;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	int mem = open(path, O_RDONLY | O_CLOEXEC);
	if (mem < 0)
		return LIVE_DENIED;
	enum live_state r = LIVE_DENIED;
	struct sm_live *h = &l->hdr;
	if (pread(mem, h, sizeof(*h), (off_t)(s->shim_base + off)) == (ssize_t)sizeof(*h)) {
		r = LIVE_OFF;
		if (memcmp(h->magic, SM_LIVE_MAGIC, sizeof(SM_LIVE_MAGIC)) == 0) {
			r = LIVE_OK;
			/* No arena yet (no secret memory used): the counters stay zero. */
			if (h->addr_live &&
			    !(read_u64(mem, h->addr_live, &l->live) && read_u64(mem, h->addr_peak, &l->peak) &&
			      read_u64(mem, h->addr_touched, &l->touched) &&
			      read_u64(mem, h->addr_mapped, &l->mapped) &&
			      read_u64(mem, h->addr_chunks, &l->chunks) &&
			      read_u64(mem, h->addr_enomem, &l->enomem) &&
			      read_u64(mem, h->addr_limit, &l->limit)))
				r = LIVE_DENIED;
		}
	}
	close(mem);
	h->backend[sizeof(h->backend) - 1] = '\0';
	if ((int64_t)l->live < 0)
		l->live = 0; /* thread caches not yet published */
	return r;
}

static void search(const unsigned char *buf, size_t len, uint64_t addr,
		   struct needle *nd, size_t nn, bool json)
{
	for (size_t k = 0; k < nn; k++) {
		const unsigned char *p = buf;
		size_t left = len;
		while (left >= nd[k].len) {
			const unsigned char *q = memmem(p, left, nd[k].bytes, nd[k].len);
			if (!q)
				break;
			nd[k].hits++;
			if (!json && nd[k].hits <= 8)
				printf("found %s at 0x%" PRIx64 "\n", nd[k].text, addr + (uint64_t)(q - buf));
			left -= (size_t)(q - p) + 1;
			p = q + 1;
		}
	}
}

/* Reads every readable mapping in 1 MiB steps with an overlap, so that a needle
 * across a step boundary is still seen. */
static int scan(pid_t pid, struct needle *nd, size_t nn, struct summary *s, bool json)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *maps = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	int mem = open(path, O_RDONLY | O_CLOEXEC);
	if (!maps || mem < 0) {
		if (maps)
			fclose(maps);
		return -1;
	}
	size_t maxlen = 0;
	for (size_t k = 0; k < nn; k++)
		if (nd[k].len > maxlen)
			maxlen = nd[k].len;
	const size_t step = 1 << 20;
	unsigned char *buf = malloc(step + maxlen);
	char line[8192];
	while (buf && fgets(line, sizeof(line), maps)) {
		uint64_t lo, hi;
		char perms[8];
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &lo, &hi, perms) != 3 || perms[0] != 'r')
			continue;
		/* The kernel's own pages (clock data: [vvar], and [vvar_vclock] since
		 * Linux 6.13; [vsyscall]) are never readable this way and hold nothing of
		 * the process: counted, they would look like secret mappings. */
		if (strstr(line, "[vvar") || strstr(line, "[vsyscall]"))
			continue;
		bool ok = false, failed = false;
		for (uint64_t a = lo; a < hi; a += step) {
			size_t want = (size_t)(hi - a < step + maxlen ? hi - a : step + maxlen);
			ssize_t r = pread(mem, buf, want, (off_t)a);
			if (r <= 0) {
				failed = true;
				continue;
			}
			ok = true;
			s->scanned += (uint64_t)r;
			search(buf, (size_t)r, a, nd, nn, json);
		}
		if (failed && !ok)
			s->unreadable++;
		else
			s->readable++;
	}
	free(buf);
	close(mem);
	fclose(maps);
	return 0;
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
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'f':
			if (!parse_hex(optarg, &nd[nn])) {
				fprintf(stderr, "secretmem-inspect: --find needs hex digits (two per byte), not \"%s\"\n", optarg);
				return 2;
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
				return 2;
			}
			nn++;
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("secretmem-inspect %s\n", PACKAGE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	char *end;
	errno = 0;
	long pid = strtol(argv[optind], &end, 10);
	if (!isdigit((unsigned char)argv[optind][0]) || errno || *end || pid <= 0 || pid > 0x7fffffff) {
		fprintf(stderr, "secretmem-inspect: \"%s\" is not a process ID\n", argv[optind]);
		return 2;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld", pid);
	if (access(path, F_OK)) {
		fprintf(stderr, "secretmem-inspect: no process %ld\n", pid);
		return 1;
	}
	struct summary s = { 0 };
	if (read_smaps((pid_t)pid, &s)) {
		fprintf(stderr, "secretmem-inspect: cannot read /proc/%ld/smaps: %s%s\n", pid, strerror(errno),
			errno == EACCES || errno == EPERM ? " (run as the process's user or as root)" : "");
		return 1;
	}
	if (nn && scan((pid_t)pid, nd, nn, &s, json)) {
		fprintf(stderr, "secretmem-inspect: cannot read /proc/%ld/mem: %s%s\n", pid, strerror(errno),
			errno == EACCES || errno == EPERM ? " (--find needs root or ptrace access)" : "");
		return 1;
	}
	bool found = false;
	for (size_t k = 0; k < nn; k++)
		found |= nd[k].hits > 0;
	struct live live;
	enum live_state ls = read_live((pid_t)pid, &s, &live);
	static const char *const modes[] = { "exclusive", "uncached", "off" };
	const char *mode = live.hdr.mode < 3 ? modes[live.hdr.mode] : "?";

	if (json) {
		printf("{\n  \"pid\": %ld,\n  \"shim_loaded\": %s,\n  \"secret_mappings\": %lu,\n"
		       "  \"secret_mapped_bytes\": %llu,\n  \"secret_resident_bytes\": %llu,\n"
		       "  \"secret_locked_bytes\": %llu",
		       pid, s.shim ? "true" : "false", s.mappings, s.size_kb * 1024, s.rss_kb * 1024,
		       s.locked_kb * 1024);
		if (ls == LIVE_OK)
			printf(",\n  \"stats\": {\"mode\": \"%s\", \"backend\": \"%s\", \"allocs\": %" PRIu64
			       ", \"frees\": %" PRIu64 ", \"live_bytes\": %" PRIu64 ", \"peak_bytes\": %" PRIu64
			       ", \"touched_bytes\": %" PRIu64 ", \"mapped_bytes\": %" PRIu64 ", \"chunks\": %" PRIu64
			       ", \"enomem\": %" PRIu64 ", \"limit\": %" PRIu64 "}",
			       mode, live.hdr.backend, live.hdr.allocs, live.hdr.frees, live.live, live.peak,
			       live.touched, live.mapped, live.chunks, live.enomem, live.limit);
		else
			printf(",\n  \"stats\": null");
		if (nn) {
			printf(",\n  \"scan\": {\"readable_mappings\": %lu, \"unreadable_mappings\": %lu, "
			       "\"bytes_scanned\": %llu, \"found\": [", s.readable, s.unreadable, s.scanned);
			for (size_t k = 0; k < nn; k++)
				printf("%s{\"needle\": %zu, \"hits\": %lu}", k ? ", " : "", k, nd[k].hits);
			printf("]}");
		}
		printf("\n}\n");
	} else {
		printf("process:           %ld\n", pid);
		printf("shim loaded:       %s%s%s\n", s.shim ? "yes (" : "no", s.shim ? s.shim_path : "", s.shim ? ")" : "");
		printf("secret mappings:   %lu\n", s.mappings);
		printf("secret mapped:     %llu KiB\n", s.size_kb);
		printf("secret resident:   %llu KiB\n", s.rss_kb);
		if (ls == LIVE_OK) {
			printf("mode, backend:     %s, %s\n", mode, live.hdr.backend);
			printf("secret allocs:     %" PRIu64 " (frees %" PRIu64 ")\n", live.hdr.allocs, live.hdr.frees);
			printf("secret live/peak:  %" PRIu64 " / %" PRIu64 " bytes\n", live.live, live.peak);
			printf("pages touched:     %" PRIu64 " bytes in %" PRIu64 " chunks (limit %" PRIu64 ")\n",
			       live.touched, live.chunks, live.limit);
			printf("refused (ENOMEM):  %" PRIu64 "\n", live.enomem);
		} else if (ls == LIVE_OFF) {
			printf("live stats:        not exposed (start the process with SECRETMEM_STATS set)\n");
		} else if (ls == LIVE_DENIED) {
			printf("live stats:        cannot read /proc/%ld/mem (needs ptrace access)\n", pid);
		}
		if (nn) {
			printf("scanned:           %llu bytes in %lu readable mappings (%lu unreadable)\n",
			       s.scanned, s.readable, s.unreadable);
			for (size_t k = 0; k < nn; k++)
				printf("%-18s %s: %lu\n", k ? "" : "search results:", nd[k].text, nd[k].hits);
		}
	}
	return found ? 3 : 0;
}
