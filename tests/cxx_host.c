/* SPDX-License-Identifier: MIT */
/*
 * cxx_host: a C program that loads a C++ plugin with RTLD_LOCAL and runs it.
 *
 *   cxx_host PLUGIN.so
 */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: cxx_host PLUGIN.so\n");
		return 2;
	}
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "cxx_host: %s\n", dlerror());
		return 2;
	}
	int (*run)(void) = (int (*)(void))dlsym(h, "plugin_run");
	if (!run) {
		fprintf(stderr, "cxx_host: %s\n", dlerror());
		return 2;
	}
	int r = run();
	fflush(stdout);
	return r;
}
