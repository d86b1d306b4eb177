/* SPDX-License-Identifier: MIT */
/*
 * Symbol names against rules (see symmatch.h).
 *
 * Why the runtime's __cxa_demangle and not a demangler of our own: the Itanium
 * mangling has substitutions, template arguments, ABI tags and clones that a
 * small demangler gets wrong for exactly the names users copy from c++filt or a
 * debugger; every process that has C++ code has a C++ runtime loaded, whose
 * demangler is the reference. It is looked up in that runtime's .dynsym in
 * memory (dl_iterate_phdr, which may nest, and elfsym.c), not with dlsym, which
 * must not run inside a dl_iterate_phdr callback.
 */
#include "config.h"
#include "symmatch.h"
#include "elfsym.h"
#include "log.h"

#include <link.h>
#include <stdlib.h>
#include <string.h>

typedef char *(*demangle_fn)(const char *, char *, size_t *, int *);
static demangle_fn demangle;

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static void find_fn(void *ctx, const char *name, uintptr_t lo, uintptr_t hi)
{
	(void)hi;
	if (strcmp(name, "__cxa_demangle") == 0)
		*(uintptr_t *)ctx = lo;
}

static int find_runtime(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	const char *b = base_name(info->dlpi_name ? info->dlpi_name : "");
	if (strncmp(b, "libstdc++.so", 12) && strncmp(b, "libc++abi.so", 12) && strncmp(b, "libc++.so", 9))
		return 0;
	struct sm_elf_object o = { info->dlpi_addr, info->dlpi_name, info->dlpi_phdr, info->dlpi_phnum };
	uintptr_t f = 0;
	sm_elf_read_memory(&o, find_fn, &f);
	if (f)
		*(demangle_fn *)data = (demangle_fn)f;
	return f != 0;
}

/* The qualified name of a mangled function name without the runtime's demangler:
 * _Z<source-name> or _ZN[qualifiers]<source-name>...[C1|C2|D0|D1|D2]E, with
 * St for std. Enough for rules by name (not by signature); false for anything
 * else (templates, other substitutions, operators). */
static bool nested_name(const char *m, char *out, size_t size)
{
	const char *p = m + 2;
	size_t k = 0;
	bool nested = *p == 'N';
	const char *last = NULL;
	size_t lastlen = 0;
	if (nested) {
		p++;
		while (*p == 'r' || *p == 'V' || *p == 'K' || *p == 'R' || *p == 'O')
			p++;
	}
	for (;;) {
		const char *comp;
		size_t len;
		if (p[0] == 'S' && p[1] == 't') {
			comp = "std";
			len = 3;
			p += 2;
		} else if (nested && (p[0] == 'C' || p[0] == 'D') && p[1] >= '0' && p[1] <= '2' && last) {
			/* constructor / destructor: the class's name again */
			bool dtor = p[0] == 'D';
			p += 2;
			if (k + 2 + dtor + lastlen >= size)
				return false;
			memcpy(out + k, "::", 2);
			k += 2;
			if (dtor)
				out[k++] = '~';
			memcpy(out + k, last, lastlen);
			k += lastlen;
			continue;
		} else if (*p >= '1' && *p <= '9') {
			len = 0;
			while (*p >= '0' && *p <= '9' && len < 4096)
				len = len * 10 + (size_t)(*p++ - '0');
			comp = p;
			if (strnlen(p, len) < len)
				return false;
			p += len;
		} else {
			break;
		}
		if (k + (k ? 2 : 0) + len >= size)
			return false;
		if (k) {
			memcpy(out + k, "::", 2);
			k += 2;
		}
		memcpy(out + k, comp, len);
		k += len;
		last = comp;
		lastlen = len;
		if (!nested)
			break;
	}
	if (!k || (nested && *p != 'E'))
		return false;
	out[k] = '\0';
	return true;
}

/* Copies s without spaces into out (size n); false if it does not fit. */
static bool squeeze(const char *s, size_t len, char *out, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == ' ')
			continue;
		if (k + 1 >= n)
			return false;
		out[k++] = s[i];
	}
	out[k] = '\0';
	return true;
}

/* Removes from s (spaces already removed) what c++filt prints but a rule need not
 * name: ABI tags ("load_str[abi:cxx11]", on every function returning a
 * std::string) and anonymous namespaces ("crypto::(anonymousnamespace)::f" is
 * crypto::f: the namespace has no name to write). In place. */
void sm_cxx_normalize(char *s)
{
	static const char anon[] = "(anonymousnamespace)::";
	size_t k = 0;
	for (size_t i = 0; s[i];) {
		if (strncmp(s + i, "[abi:", 5) == 0) {
			const char *e = strchr(s + i, ']');
			if (e) {
				i = (size_t)(e - s) + 1;
				continue;
			}
		}
		if (strncmp(s + i, anon, sizeof(anon) - 1) == 0) {
			i += sizeof(anon) - 1;
			continue;
		}
		s[k++] = s[i++];
	}
	s[k] = '\0';
}

/* Whether sym is a C++ name as source code writes it, not a symbol (no C or
 * mangled symbol has a ':' or a '<'): a name the debug information gives
 * ("tkey<int>"), or one debuginfo.c qualified ("crypto::(anonymous
 * namespace)::hidden_key"). */
static bool qualified(const char *sym)
{
	return strchr(sym, ':') || strchr(sym, '<');
}

/* The demangled name of s->sym in s->name: the return type (of a template
 * function) and " [clone .cold]" suffixes cut, spaces removed, normalized. */
static bool demangled(struct sm_symbol *s)
{
	if (s->state)
		return s->state > 0;
	s->state = -1;
	if (qualified(s->sym)) {
		/* a name as the debug information gives it, qualified already */
		if (!squeeze(s->sym, strlen(s->sym), s->name, sizeof(s->name)))
			return false;
		sm_cxx_normalize(s->name);
		s->state = 1;
		return true;
	}
	if (s->sym[0] != '_' || s->sym[1] != 'Z')
		return false;
	if (!demangle)
		dl_iterate_phdr(find_runtime, &demangle);
	if (!demangle) {
		/* no C++ runtime loaded (C++ code that needs none of it): names only */
		if (!nested_name(s->sym, s->name, sizeof(s->name)))
			return false;
		s->state = 1;
		return true;
	}
	int status = -1;
	char *d = demangle(s->sym, NULL, NULL, &status);
	if (!d || status != 0) {
		free(d);
		return false;
	}
	size_t len = strlen(d);
	/* " [clone .cold]", " [clone .part.0]" ... */
	for (char *c; len && d[len - 1] == ']' && (c = strstr(d, " [clone ")) != NULL;) {
		len = (size_t)(c - d);
		*c = '\0';
	}
	/* the return type a template function's name starts with: up to the last
	 * space outside <> and () before the parameter list */
	size_t start = 0;
	int angle = 0, paren = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = d[i];
		if (ch == '<')
			angle++;
		else if (ch == '>')
			angle--;
		else if (ch == '(') {
			if (angle == 0 && paren == 0)
				break; /* the parameter list */
			paren++;
		} else if (ch == ')')
			paren--;
		else if (ch == ' ' && angle == 0 && paren == 0)
			start = i + 1;
	}
	bool ok = squeeze(d + start, len - start, s->name, sizeof(s->name));
	free(d);
	if (ok) {
		sm_cxx_normalize(s->name);
		s->state = 1;
	}
	return ok;
}

/* Whether name is rule, or ends in "::" + rule. */
static bool qualified_match(const char *name, size_t nlen, const char *rule, size_t rlen)
{
	if (nlen < rlen || memcmp(name + nlen - rlen, rule, rlen) != 0)
		return false;
	return nlen == rlen || (nlen >= rlen + 2 && name[nlen - rlen - 1] == ':' && name[nlen - rlen - 2] == ':');
}

/* Whether the word "operator" ends at s[i] (i its length past its start): an
 * identifier of its own, not the end of binary_operator. */
static bool operator_before(const char *s, size_t i)
{
	return i >= 8 && strncmp(s + i - 8, "operator", 8) == 0 &&
	       (i == 8 || s[i - 9] == ':' || s[i - 9] == '~');
}

/* The end of the name part of a demangled name: its parameter list's '(' outside
 * template arguments ("operator()" is part of the name). */
static size_t name_end(const char *s)
{
	int angle = 0;
	size_t i = 0;
	for (; s[i]; i++) {
		if (s[i] == '<')
			angle++;
		else if (s[i] == '>')
			angle--;
		else if (s[i] == '(' && angle == 0) {
			if (s[i + 1] == ')' && operator_before(s, i)) {
				i++;
				continue;
			}
			break;
		}
	}
	return i;
}

/* The first n characters of s without template arguments, into out (size size):
 * crypto::Box<int>::fill is crypto::Box::fill. Its length, or size if it does not
 * fit. */
static size_t without_templates(const char *s, size_t n, char *out, size_t size)
{
	size_t k = 0;
	int depth = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '<' && !operator_before(s, i))
			depth++;
		else if (s[i] == '>' && depth > 0)
			depth--;
		else if (depth == 0) {
			if (k + 1 >= size)
				return size;
			out[k++] = s[i];
		}
	}
	out[k] = '\0';
	return k;
}

/* A C name or mangled name: the name itself, or a part the compiler split off it
 * (load_key.cold, load_key.part.0, .constprop.N). */
static bool plain_match(const char *func, const char *sym)
{
	size_t n = strlen(func);
	return strncmp(func, sym, n) == 0 && (sym[n] == '\0' || sym[n] == '.');
}

bool sm_rule_is_cxx(const char *rule)
{
	return strstr(rule, "::") || strchr(rule, '(') || strchr(rule, '<');
}

/* Whether the mangled symbol can name the rule's last identifier ("4load" in
 * _ZN8KeyStore4loadEi): the cheap test before demangling. */
static bool may_name(const char *sym, const char *rule)
{
	size_t end = name_end(rule), b = end;
	while (b > 0 && rule[b - 1] != ':' && rule[b - 1] != '>')
		b--;
	/* a template's name: the identifier before its arguments */
	size_t e = end;
	if (b < end && rule[b] == '~')
		b++; /* a destructor: its class's name, which its mangled name holds */
	if (b == end || rule[b] == '<' || strncmp(rule + b, "operator", 8) == 0)
		return true; /* an operator or a shape this filter does not know: no filter */
	for (size_t i = b; i < end; i++)
		if (rule[i] == '<') {
			e = i;
			break;
		}
	char key[160];
	size_t n = e - b;
	if (n == 0 || n > 120)
		return true;
	size_t k = sm_format(key, sizeof(key), "%zu", n);
	memcpy(key + k, rule + b, n);
	key[k + n] = '\0';
	return strstr(sym, key) != NULL;
}

bool sm_rule_key(const char *rule, char *key, size_t size)
{
	/* as sm_symbol_matches reads it: spaces, ABI tags and anonymous namespaces
	 * are not part of any name it is compared with (load[abi:cxx11] matches
	 * _Z4loadB5cxx11i, whose DWARF name is load) */
	char r[512];
	if (!squeeze(rule, strlen(rule), r, sizeof(r)))
		return false;
	sm_cxx_normalize(r);
	if (!sm_rule_is_cxx(r)) {
		/* a C or mangled name: every name it matches begins with it */
		size_t n = strlen(r);
		if (n == 0 || n >= size)
			return false;
		memcpy(key, r, n + 1);
		return true;
	}
	/* its last identifier, before the template arguments it may end with */
	size_t e = name_end(r);
	if (e > 0 && r[e - 1] == '>') {
		int depth = 0;
		while (e > 0) {
			char ch = r[--e];
			depth += ch == '>' ? 1 : ch == '<' ? -1 : 0;
			if (depth == 0)
				break;
		}
		if (depth != 0)
			return false;
	}
	size_t b = e;
	while (b > 0 && r[b - 1] != ':' && r[b - 1] != '>')
		b--;
	if (b < e && r[b] == '~')
		b++; /* a destructor: its class's name, which its mangled name holds too */
	if (b == e || strncmp(r + b, "operator", 8) == 0)
		return false;
	if (e - b >= size)
		return false;
	memcpy(key, r + b, e - b);
	key[e - b] = '\0';
	return e > b;
}

bool sm_symbol_matches(const char *rule, struct sm_symbol *s)
{
	if (plain_match(rule, s->sym))
		return true;
	bool named = qualified(s->sym);
	if ((!named && (s->sym[0] != '_' || s->sym[1] != 'Z')) || (rule[0] == '_' && rule[1] == 'Z'))
		return false;
	char r[512];
	if (!squeeze(rule, strlen(rule), r, sizeof(r)))
		return false;
	sm_cxx_normalize(r);
	if ((!named && !may_name(s->sym, r)) || !demangled(s))
		return false;
	if (r[name_end(r)] == '(')
		/* a signature: that overload only */
		return qualified_match(s->name, strlen(s->name), r, strlen(r));
	size_t n = name_end(s->name);
	if (qualified_match(s->name, n, r, strlen(r)))
		return true;
	/* make_key matches make_key<int>, Box::fill crypto::Box<int>::fill */
	if (!strchr(r, '<')) {
		char bare[sizeof(s->name)];
		size_t k = without_templates(s->name, n, bare, sizeof(bare));
		return k < sizeof(bare) && qualified_match(bare, k, r, strlen(r));
	}
	return false;
}
