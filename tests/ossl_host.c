/* SPDX-License-Identifier: MIT */
/* ossl_host PLUGIN: dlopen(PLUGIN, RTLD_LOCAL), then its plugin_set(); prints
 * what CRYPTO_set_mem_functions returned (see ossl_plugin.c). */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	void *h = argc > 1 ? dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) : NULL;
	int (*set)(void) = h ? (int (*)(void))dlsym(h, "plugin_set") : NULL;
	if (!set) {
		fprintf(stderr, "ossl_host: %s\n", dlerror());
		return 2;
	}
	printf("set %d\n", set());
	return 0;
}
