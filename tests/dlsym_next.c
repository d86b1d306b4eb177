/* SPDX-License-Identifier: MIT */
/*
 * dlsym_next: what dlsym(RTLD_NEXT, ...) finds from the program (it depends on
 * dlsym's caller, which the shim's dlsym hook must leave the program), and a dlsym
 * into a dlopened library.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
int main(void) {
	void *(*m)(size_t) = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	void *p = dlsym(RTLD_NEXT, "puts");
	Dl_info a, b;
	dladdr((void *)m, &a); dladdr(p, &b);
	printf("malloc from %s\nputs from %s\n", strrchr(a.dli_fname, '/') + 1, strrchr(b.dli_fname, '/') + 1);
	void *h = dlopen("libz.so.1", RTLD_NOW);
	printf("zlibVersion %s\n", h && dlsym(h, "zlibVersion") ? "found" : "missing");
	return 0;
}
