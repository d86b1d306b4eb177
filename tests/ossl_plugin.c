/* SPDX-License-Identifier: MIT */
/*
 * ossl_plugin: a plugin that links libcrypto and gives it allocation functions of
 * its own, opened RTLD_LOCAL by a host that does not link libcrypto, so the global
 * scope has none: its CRYPTO_set_mem_functions call must still reach its
 * libcrypto through the shim (reloc.bats). With -O2 the call is a tail call, so
 * the return address is the host's.
 */
#include <openssl/crypto.h>
#include <stdlib.h>

static size_t plugin_bytes;

static void *plugin_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	void *p = malloc(n);
	plugin_bytes += p ? n : 0;
	return p;
}

static void *plugin_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return realloc(p, n);
}

static void plugin_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

int plugin_set(void)
{
	return CRYPTO_set_mem_functions(plugin_malloc, plugin_realloc, plugin_free);
}
