/* SPDX-License-Identifier: MIT */
/*
 * The standard streams' buffers in secret memory. stdin's buffer holds every byte
 * a program reads from it, a password read by a tagged function included, and
 * stdout's every byte printed; glibc allocates them at a stream's first use, from
 * whichever function used it first (often main), so routing cannot make them
 * secret. When rules are set, before main, each of stdin and stdout that has no
 * buffer yet gets one from the arena, of the size and buffering mode glibc would
 * have chosen (the file's st_blksize up to BUFSIZ, line-buffered on a terminal
 * or where line buffering was asked for already), so the program's I/O behaves as
 * before. One difference: glibc decides a stream's mode at its first use, the
 * shim before main, so a program that later puts a terminal or a file on fd 0 or
 * 1 with dup2 keeps the mode its start-up descriptors had. They are whole pages of the shim's own
 * (sm_arena_own_pages): the statistics count the program's allocations only.
 *
 * Only with SECRETMEM_FORK=copy: with drop, a forked child loses its secret
 * memory, and its stdio with it. The buffers are never freed (stdio does not free
 * a buffer given by setvbuf). Never calls malloc.
 */
#include "config.h"
#include "streams.h"
#include "arena.h"
#include "log.h"
#include "options.h"

#include <stdio.h>
#include <stdio_ext.h>
#include <sys/stat.h>
#include <unistd.h>

static void give_buffer(FILE *f, const char *name)
{
	/* Under the stream's lock (recursive: setvbuf takes it again), against a
	 * thread a constructor started. A stream used already keeps its buffer:
	 * replacing it would drop what it holds (and one the program made
	 * unbuffered has a one-byte buffer). */
	flockfile(f);
	if (__fbufsize(f) != 0) {
		funlockfile(f);
		return;
	}
	int fd = fileno(f);
	struct stat st;
	/* glibc's own choice (filedoalloc.c): st_blksize when it is below BUFSIZ. */
	size_t size = BUFSIZ;
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_blksize > 0 && (size_t)st.st_blksize < BUFSIZ)
		size = (size_t)st.st_blksize;
	char *buf = sm_arena_own_pages(size);
	if (!buf) {
		funlockfile(f);
		sm_warn("no secret memory for %s's buffer: what the program reads or prints "
			"there stays in ordinary memory", name);
		return;
	}
	/* Line buffering asked for already (setvbuf(f, NULL, _IOLBF, 0) allocates
	 * nothing; stdbuf -oL does it) is kept; else glibc's rule for a terminal. */
	int mode = __flbf(f) || (fd >= 0 && isatty(fd)) ? _IOLBF : _IOFBF;
	int err = setvbuf(f, buf, mode, size); /* on failure the pages stay unused */
	funlockfile(f);
	if (err)
		return;
	sm_debug("%s: a %zu-byte buffer in secret memory (%s)", name, size,
		 mode == _IOLBF ? "line-buffered" : "fully buffered");
}

void sm_streams_secret(void)
{
	if (sm_opt.fork != SM_FORK_COPY)
		return;
	give_buffer(stdin, "stdin");
	give_buffer(stdout, "stdout");
}
