/* SPDX-License-Identifier: MIT */
/*
 * Whether a symbol is the function a SECRETMEM_SITES / SECRETMEM_WRAPPERS entry
 * names. An entry is a C name (load_key), a mangled C++ name (_ZN8KeyStore4loadEv),
 * or a C++ name as c++filt prints it: qualified (KeyStore::load, crypto::KeyStore::load),
 * which matches every overload in every enclosing scope, or with its signature
 * (KeyStore::load(int)), which matches that overload only. Spaces are ignored.
 *
 * C++ symbols are demangled with the C++ runtime's own __cxa_demangle (libstdc++
 * or libc++abi, found in the loaded objects without dlsym), only at rule
 * resolution and only for symbols that contain the entry's last name. Its result
 * is malloc'd by the runtime: call only under the shim's re-entry guard. When no
 * runtime is loaded (C++ code that needs none of it), a small demangler of nested
 * names gives the qualified name without the signature: rules by name match,
 * rules with a signature do not.
 */
#ifndef SM_SYMMATCH_H
#define SM_SYMMATCH_H

#include <stdbool.h>
#include <stddef.h>

#pragma GCC visibility push(hidden)

/* One symbol's demangled form, computed on the first rule that needs it. */
struct sm_symbol {
	const char *sym;
	int state;        /* 0: not tried; 1: demangled into name; -1: not C++ or failed */
	char name[1024];  /* spaces removed, " [clone ...]" and the return type cut */
};

/* Whether sym (held in s, whose other fields this fills on demand) is the function
 * rule names. sym is a symbol (C or mangled), or a C++ name without parameters
 * as the debug information gives it ("f<int>") or debuginfo.c qualifies it
 * ("crypto::(anonymous namespace)::f"). */
bool sm_symbol_matches(const char *rule, struct sm_symbol *s);

/* A string that every name rule matches contains, as a symbol or as a DWARF
 * name (its linkage name, or its own name): the rule for a C or mangled name,
 * else the last identifier of its C++ name ("load" for KeyStore::load(int)).
 * False when there is none to give (an operator, a shape not known). */
bool sm_rule_key(const char *rule, char *key, size_t size);

/* Removes ABI tags ([abi:cxx11]) and anonymous namespaces ("(anonymousnamespace)::")
 * from s, a C++ name with its spaces removed; in place. */
void sm_cxx_normalize(char *s);

/* Whether rule is in the C++ form (has "::" or a signature). */
bool sm_rule_is_cxx(const char *rule);

#pragma GCC visibility pop

#endif
