/* SPDX-License-Identifier: MIT */
/*
 * libcrashopener.so: a library built with RUNPATH=$ORIGIN/sub that loads its
 * neighbour there by bare name, as plugins do. glibc finds the RUNPATH (and the
 * namespace) from dlopen's return address: under the shim, whose dlopen runs a
 * hook first, the lookup must still be this library's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

/* Not tail calls: the handle is tested before it is returned. */
int opener_load(void)
{
	void *h = dlopen("libcrashneighbour.so", RTLD_NOW | RTLD_LOCAL);
	return h != NULL && dlclose(h) == 0;
}

int opener_mload(void)
{
	void *h = dlmopen(LM_ID_BASE, "libcrashneighbour.so", RTLD_NOW | RTLD_LOCAL);
	return h != NULL && dlclose(h) == 0;
}
