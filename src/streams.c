/* SPDX-License-Identifier: MIT */
/*
 * The standard streams' buffers in secret memory while the process holds secret
 * memory. stdin's buffer holds what the program reads there (a password a tagged
 * function reads with getline included, and what glibc read ahead), stdout's and
 * stderr's what it prints; glibc allocates a buffer at a stream's first use, from
 * whichever function used it first (usually main), so routing cannot make it
 * secret.
 *
 * Hold (sm_streams_hold): at the first secret allocation, and at the first after
 * the arena went idle, each of the three standard FILE objects that is buffered
 * gets a secret buffer of the size glibc chose: a stream with no buffer yet gets
 * one with glibc's size and mode (setvbuf); a stream with glibc's own buffer has
 * what that buffer holds moved in (unread input to the front, or pending output
 * at the same offsets), then the old buffer is wiped and kept for later. Pages of the
 * shim's own (sm_arena_own_pages): not among the program's allocations, so they
 * neither count in the statistics nor keep the arena from going idle.
 *
 * Give back (sm_streams_give_back): when no secret block is live, before the
 * arena unmaps its chunks (so that the kernel can hibernate), pending output is
 * flushed and unread input moved into an ordinary buffer (glibc's old one, or
 * a static one for a stream that had none); the secret one is wiped. The
 * library keeps the ordinary buffers (glibc's buffer flag says the program's
 * own, so glibc never frees them): neither step calls the next allocator, so
 * that a secret allocation or free in a signal handler that interrupted it
 * cannot deadlock on its lock. A stream another thread holds, or one this
 * thread is inside (a free() from within stdio), keeps its secret buffer, and
 * its chunk stays until the next time nothing is live.
 *
 * The move happens inside a malloc, realloc or free the program made, possibly
 * from within stdio on that very stream (getline's malloc of the line it returns):
 * glibc's stdio functions read the stream's pointers afresh after each
 * allocation, and a stream in a state they would keep pointers into across one
 * (a backup area for ungetc, markers, wide orientation, a buffer the program
 * gave with setvbuf, no buffering) is left alone. Not with SECRETMEM_FORK=drop: a
 * child would lose its stdio with its secret memory. Only the three FILE objects
 * of libc itself, which are never freed, whatever stdin and friends point to.
 * Never calls malloc or free.
 */
#include "config.h"
#include "streams.h"
#include "arena.h"
#include "log.h"
#include "options.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* glibc's libio flags (libio/libio.h, unchanged since glibc 2.1): not in any
 * installed header, but part of struct _IO_FILE's _flags, which is. */
#define IO_USER_BUF 0x0001
#define IO_UNBUFFERED 0x0002
#define IO_IN_BACKUP 0x0100
#define IO_CURRENTLY_PUTTING 0x0800
#define IO_USER_LOCK 0x8000

/* glibc's stream lock (sysdeps/nptl/stdio-lock.h): recursive, its owner the
 * owning thread's descriptor, which is what pthread_self() returns. */
struct io_lock {
	int lock;
	int cnt;
	void *owner;
};

/* libc's own standard FILE objects: static, never freed. */
extern FILE _IO_2_1_stdin_, _IO_2_1_stdout_, _IO_2_1_stderr_;

static struct stream {
	FILE *f;
	const char *name;
	char *buf;      /* our secret buffer, while given */
	size_t len;     /* its length (whole pages) */
	char *plain;    /* our ordinary buffer: glibc's old one, or spare[] */
	size_t plain_len;
	size_t fresh_size;  /* size and mode of a buffer for the stream when it has none */
	bool fresh_tty;
	char spare[BUFSIZ]; /* glibc's buffers are at most BUFSIZ (filedoalloc.c) */
} streams[3] = {
	{ .f = &_IO_2_1_stdin_, .name = "stdin" },
	{ .f = &_IO_2_1_stdout_, .name = "stdout" },
	{ .f = &_IO_2_1_stderr_, .name = "stderr" },
};

static pthread_mutex_t streams_lock = PTHREAD_MUTEX_INITIALIZER;

static bool held_here(FILE *f)
{
	const struct io_lock *l = f->_lock;
	return l && l->owner == (void *)pthread_self();
}

/* Whether every stdio pointer of f lies in its buffer, and f is in no state whose
 * pointers point elsewhere or would be kept across an allocation. */
static bool movable(FILE *f)
{
	if (f->_flags & (IO_UNBUFFERED | IO_IN_BACKUP | IO_USER_LOCK) || f->_mode > 0 ||
	    f->_IO_save_base || f->_markers || !f->_IO_buf_base)
		return false;
	char *lo = f->_IO_buf_base, *hi = f->_IO_buf_end;
	char *p[] = { f->_IO_read_base, f->_IO_read_ptr, f->_IO_read_end,
		      f->_IO_write_base, f->_IO_write_ptr, f->_IO_write_end };
	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		if (p[i] && (p[i] < lo || p[i] > hi))
			return false;
	return hi > lo;
}

static char *rebase(char *p, const char *from, char *to)
{
	return p ? to + (p - from) : NULL;
}

/* Moves f's state into buffer to (at least as long as f's): pending output stays
 * at its offsets (copy: whether the bytes go along); unread input goes to the
 * front, as glibc would have it after a refill, so that nothing already read is
 * copied. The old buffer is left to the caller. */
static void move_state(FILE *f, char *to, bool copy)
{
	char *from = f->_IO_buf_base;
	size_t size = (size_t)(f->_IO_buf_end - from);
	if (f->_flags & IO_CURRENTLY_PUTTING) {
		/* what lies below the pending output was written already */
		char *used = f->_IO_write_ptr > f->_IO_read_end ? f->_IO_write_ptr : f->_IO_read_end;
		if (copy && used > from)
			memcpy(to, from, (size_t)(used - from));
		f->_IO_read_base = rebase(f->_IO_read_base, from, to);
		f->_IO_read_ptr = rebase(f->_IO_read_ptr, from, to);
		f->_IO_read_end = rebase(f->_IO_read_end, from, to);
		f->_IO_write_base = rebase(f->_IO_write_base, from, to);
		f->_IO_write_ptr = rebase(f->_IO_write_ptr, from, to);
		f->_IO_write_end = rebase(f->_IO_write_end, from, to);
	} else if (f->_IO_read_ptr) {
		size_t unread = (size_t)(f->_IO_read_end - f->_IO_read_ptr);
		memcpy(to, f->_IO_read_ptr, unread);
		f->_IO_read_base = f->_IO_read_ptr = to;
		f->_IO_read_end = to + unread;
		f->_IO_write_base = f->_IO_write_ptr = f->_IO_write_end = to;
	}
	f->_IO_buf_base = to;
	f->_IO_buf_end = to + size;
}

/* A stream with no buffer yet: one of glibc's size and mode (filedoalloc.c:
 * st_blksize when below BUFSIZ; line-buffered on a terminal, or where the program
 * asked for line buffering already). */
static bool give_fresh(struct stream *s)
{
	FILE *f = s->f;
	/* Asked once: glibc too decides at a stream's first use, and the hold
	 * comes back at every idle cycle. */
	if (!s->fresh_size) {
		int fd = fileno(f);
		struct stat st;
		s->fresh_size = BUFSIZ;
		if (fd >= 0 && fstat(fd, &st) == 0 && st.st_blksize > 0 &&
		    (size_t)st.st_blksize < BUFSIZ)
			s->fresh_size = (size_t)st.st_blksize;
		s->fresh_tty = fd >= 0 && isatty(fd);
	}
	size_t size = s->fresh_size;
	char *buf = sm_arena_own_pages(size);
	if (!buf)
		return false;
	int mode = __flbf(f) || s->fresh_tty ? _IOLBF : _IOFBF;
	if (setvbuf(f, buf, mode, size) != 0) {
		sm_arena_own_free(buf, size);
		return false;
	}
	s->buf = buf;
	s->len = size;
	return true;
}

/* A stream with glibc's buffer, or our ordinary one: its contents move into
 * secret memory; the old buffer is wiped and kept as the ordinary one. */
static bool give_moved(struct stream *s)
{
	FILE *f = s->f;
	if (!movable(f))
		return false;
	char *old = f->_IO_buf_base;
	size_t size = (size_t)(f->_IO_buf_end - old);
	char *buf = sm_arena_own_pages(size);
	if (!buf)
		return false;
	move_state(f, buf, true);
	f->_flags |= IO_USER_BUF; /* glibc must never free either */
	explicit_bzero(old, size);
	s->plain = old;
	s->plain_len = size;
	s->buf = buf;
	s->len = size;
	return true;
}

static void hold(struct stream *s)
{
	FILE *f = s->f;
	if (s->buf) {
		if (f->_IO_buf_base == s->buf)
			return;
		/* the program replaced or dropped it (setvbuf, fclose, freopen) */
		sm_arena_own_free(s->buf, s->len);
		s->buf = NULL;
	}
	if (f->_flags & IO_UNBUFFERED || f->_mode > 0)
		return;
	/* Not against a thread that uses the stream now; this thread's own use is
	 * fine (see above), but for a stream with no buffer yet: this thread is
	 * then inside its first use, allocating its buffer. */
	bool mine = held_here(f);
	if (!mine && ftrylockfile(f) != 0)
		return;
	bool ok;
	if (!f->_IO_buf_base)
		ok = !mine && give_fresh(s);
	else
		ok = (!(f->_flags & IO_USER_BUF) || f->_IO_buf_base == s->plain) && give_moved(s);
	if (!mine)
		funlockfile(f);
	if (ok)
		sm_debug("%s: its %zu-byte buffer is in secret memory", s->name,
			 (size_t)(f->_IO_buf_end - f->_IO_buf_base));
}

void sm_streams_hold(void)
{
	if (sm_opt.fork != SM_FORK_COPY)
		return;
	int saved = errno;
	/* Busy: another thread gives the buffers back and then holds them again if
	 * its chunks stay; or this thread re-entered (a free in a hold). */
	if (pthread_mutex_trylock(&streams_lock) != 0)
		return;
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++)
		hold(&streams[i]);
	pthread_mutex_unlock(&streams_lock);
	errno = saved;
}

static void give_back(struct stream *s)
{
	FILE *f = s->f;
	if (f->_IO_buf_base != s->buf) { /* replaced or dropped by the program */
		sm_arena_own_free(s->buf, s->len);
		s->buf = NULL;
		return;
	}
	if (held_here(f) || ftrylockfile(f) != 0)
		return;
	size_t size = (size_t)(f->_IO_buf_end - f->_IO_buf_base);
	char *to = s->plain && s->plain_len >= size ? s->plain
		   : size <= sizeof(s->spare) ? s->spare : NULL;
	/* Pending output goes where it was going; it never moves to ordinary memory. */
	if (f->_flags & IO_CURRENTLY_PUTTING && f->_IO_write_ptr > f->_IO_write_base)
		fflush(f);
	if (to && f->_IO_buf_base == s->buf && movable(f) &&
	    !(f->_flags & IO_CURRENTLY_PUTTING && (f->_IO_write_ptr > f->_IO_write_base ||
						   f->_IO_read_ptr < f->_IO_read_end))) {
		move_state(f, to, false);
		s->plain = to;
		s->plain_len = to == s->spare ? sizeof(s->spare) : s->plain_len;
		sm_arena_own_free(s->buf, s->len);
		s->buf = NULL;
	}
	funlockfile(f);
}

void sm_streams_give_back(void)
{
	int saved = errno;
	if (pthread_mutex_trylock(&streams_lock) != 0)
		return;
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++)
		if (streams[i].buf)
			give_back(&streams[i]);
	pthread_mutex_unlock(&streams_lock);
	errno = saved;
}
