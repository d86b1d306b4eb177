/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics: a tiny printf subset and one write(2) per message to fd 2.
 * Never calls malloc or stdio; async-signal-safe apart from the caller's arguments.
 */
#include "config.h"
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PREFIX "libsecretmem-preload: "

int sm_log_level = SM_LOG_WARN;

struct out { char *buf; size_t size, len; };

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_str(struct out *o, const char *s)
{
	if (!s)
		s = "(null)";
	while (*s)
		put(o, *s++);
}

static void put_uint(struct out *o, unsigned long long v, unsigned base)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n)
		put(o, tmp[--n]);
}

/* Pads the field written since start to width: spaces after it (left), or c
 * (a space or '0') before it. */
static void pad(struct out *o, size_t start, size_t width, bool left, char c)
{
	size_t n = o->len - start;
	if (n >= width)
		return;
	size_t fill = width - n;
	if (left) {
		while (fill--)
			put(o, ' ');
		return;
	}
	/* Shift the field right within what fits in the buffer, then fill. */
	for (size_t i = o->len; i-- > start;)
		if (i + fill + 1 < o->size && i + 1 < o->size)
			o->buf[i + fill] = o->buf[i];
	for (size_t i = start; i < start + fill; i++)
		if (i + 1 < o->size)
			o->buf[i] = c;
	o->len += fill;
}

static void put_int(struct out *o, long long v)
{
	if (v < 0) {
		put(o, '-');
		put_uint(o, -(unsigned long long)v, 10);
	} else {
		put_uint(o, (unsigned long long)v, 10);
	}
}

size_t sm_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		/* Optional '-' or '0' and field width: pad what the conversion writes
		 * (with zeros: "%02x" of 4 is "04"). */
		bool left = *fmt == '-', zero = *fmt == '0';
		if (left || zero)
			fmt++;
		size_t width = 0;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (size_t)(*fmt++ - '0');
		size_t start = o.len;
		int lng = 0, sz = 0;
		while (*fmt == 'l') { lng++; fmt++; }
		if (*fmt == 'z') { sz = 1; fmt++; }
		switch (*fmt) {
		case 's': put_str(&o, va_arg(ap, const char *)); break;
		case 'c': put(&o, (char)va_arg(ap, int)); break;
		case 'd':
			if (sz) put_int(&o, va_arg(ap, ssize_t));
			else if (lng >= 2) put_int(&o, va_arg(ap, long long));
			else if (lng) put_int(&o, va_arg(ap, long));
			else put_int(&o, va_arg(ap, int));
			break;
		case 'u':
		case 'x': {
			unsigned base = *fmt == 'x' ? 16 : 10;
			if (sz) put_uint(&o, va_arg(ap, size_t), base);
			else if (lng >= 2) put_uint(&o, va_arg(ap, unsigned long long), base);
			else if (lng) put_uint(&o, va_arg(ap, unsigned long), base);
			else put_uint(&o, va_arg(ap, unsigned), base);
			break;
		}
		case 'p':
			put_str(&o, "0x");
			put_uint(&o, (uintptr_t)va_arg(ap, void *), 16);
			break;
		case '%': put(&o, '%'); break;
		case '\0': fmt--; break;
		default: put(&o, '%'); put(&o, *fmt); break;
		}
		pad(&o, start, width, left, zero ? '0' : ' ');
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return o.len < size ? o.len : (size ? size - 1 : 0);
}

size_t sm_format(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t n = sm_vformat(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

static void emit(const char *fmt, va_list ap)
{
	char line[1024];
	int saved = errno;
	size_t n = sizeof(PREFIX) - 1;

	memcpy(line, PREFIX, n);
	n += sm_vformat(line + n, sizeof(line) - n - 1, fmt, ap);
	line[n++] = '\n';
	for (size_t off = 0; off < n;) {
		ssize_t w = write(STDERR_FILENO, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	errno = saved;
}

void sm_log(int level, const char *fmt, ...)
{
	if (level > sm_log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit(fmt, ap);
	va_end(ap);
}

void sm_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(fmt, ap);
	va_end(ap);
	_exit(SM_EXIT_CONFIG);
}

void sm_abort(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(fmt, ap);
	va_end(ap);
	/* abort() may flush stdio, which could allocate; raise the signal directly
	 * with the default action, as glibc's malloc_printerr ends in abort(). */
	signal(SIGABRT, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGABRT);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(SIGABRT);
	_exit(127);
}
