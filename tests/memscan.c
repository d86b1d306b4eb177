/* SPDX-License-Identifier: MIT */
/*
 * memscan: searches every readable mapping of a process, through /proc/PID/mem, for
 * byte strings, as an attacker with ptrace rights (root) would.
 *
 *   memscan PID HEX [HEX...]
 *
 * Prints one line per hit, "found N ADDR PERMS PATH" (N: index of the pattern, at
 * most 16 hits per pattern), then "scanned B bytes in M mappings, U bytes unreadable,
 * S bytes in /secretmem mappings". Pages that cannot be read (secret memory gives
 * EIO) are skipped and counted. Exits 0 when the scan ran, 2 on an error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define PAGE 4096u
#ifndef MAX_HITS
#define MAX_HITS 16
#endif

static unsigned char *pat[64];
static size_t patlen[64], maxlen;
static int npat, hits[64];
static unsigned long long scanned, unreadable, secret_bytes;
static unsigned nmaps;

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void search(const unsigned char *buf, size_t n, unsigned long base, const char *perms,
		   const char *path)
{
	for (int i = 0; i < npat; i++) {
		const unsigned char *p = buf;
		size_t left = n;
		while (left >= patlen[i] && hits[i] < MAX_HITS) {
			const unsigned char *q = memmem(p, left, pat[i], patlen[i]);
			if (!q)
				break;
			hits[i]++;
			printf("found %d 0x%lx %s %s\n", i, base + (unsigned long)(q - buf), perms, path);
			left -= (size_t)(q - p) + 1;
			p = q + 1;
		}
	}
}

/* Scans [lo, hi) chunk by chunk, carrying maxlen - 1 bytes over so that a string
 * across a chunk boundary is found; where a chunk cannot be read it goes page by
 * page and skips (and counts) the pages that fail. */
static void scan_mapping(int fd, unsigned long lo, unsigned long hi, const char *perms,
			 const char *path, unsigned char *buf)
{
	size_t keep = 0; /* bytes carried over from the previous chunk (overlap) */
	unsigned long addr = lo;
	while (addr < hi) {
		size_t want = hi - addr < CHUNK ? hi - addr : CHUNK;
		ssize_t n = pread(fd, buf + keep, want, (off_t)addr);
		if (n <= 0) {
			/* whole chunk failed: page by page, so one bad page costs only itself */
			size_t step = PAGE - (addr & (PAGE - 1));
			if (step > hi - addr)
				step = hi - addr;
			n = pread(fd, buf + keep, step, (off_t)addr);
			if (n <= 0) {
				unreadable += step;
				addr += step;
				keep = 0;
				continue;
			}
		}
		scanned += (unsigned long long)n;
		size_t have = keep + (size_t)n;
		search(buf, have, addr - keep, perms, path);
		addr += (unsigned long)n;
		keep = maxlen > 1 ? maxlen - 1 : 0;
		if (keep > have)
			keep = have;
		memmove(buf, buf + have - keep, keep);
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: memscan PID HEX [HEX...]\n");
		return 2;
	}
	for (int a = 2; a < argc && npat < 64; a++) {
		size_t l = strlen(argv[a]);
		if (l == 0 || l % 2) {
			fprintf(stderr, "memscan: bad hex string %s\n", argv[a]);
			return 2;
		}
		pat[npat] = malloc(l / 2);
		for (size_t i = 0; i < l / 2; i++) {
			int h = hexval(argv[a][2 * i]), lo = hexval(argv[a][2 * i + 1]);
			if (h < 0 || lo < 0) {
				fprintf(stderr, "memscan: bad hex string %s\n", argv[a]);
				return 2;
			}
			pat[npat][i] = (unsigned char)(h << 4 | lo);
		}
		patlen[npat] = l / 2;
		if (l / 2 > maxlen)
			maxlen = l / 2;
		npat++;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/maps", argv[1]);
	FILE *maps = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%s/mem", argv[1]);
	int fd = open(path, O_RDONLY);
	if (!maps || fd < 0) {
		perror(path);
		return 2;
	}
	unsigned char *buf = malloc(CHUNK + maxlen);
	char line[4096];
	while (fgets(line, sizeof(line), maps)) {
		unsigned long lo, hi;
		char perms[8] = "", name[4096] = "";
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %4095[^\n]", &lo, &hi, perms, name) < 3)
			continue;
		if (perms[0] != 'r')
			continue;
		if (strstr(name, "/secretmem"))
			secret_bytes += hi - lo;
		nmaps++;
		scan_mapping(fd, lo, hi, perms, name[0] ? name : "[anon]", buf);
	}
	printf("scanned %llu bytes in %u mappings, %llu bytes unreadable, %llu bytes in /secretmem mappings\n",
	       scanned, nmaps, unreadable, secret_bytes);
	return 0;
}
