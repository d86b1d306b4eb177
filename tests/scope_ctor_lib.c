/* SPDX-License-Identifier: MIT */
/*
 * libscopector.so: a library whose constructor starts a thread and waits for it,
 * while the dlopen that runs the constructor holds the loader's lock. The thread
 * opens the process's first secretmem scope and allocates in it: starting routing
 * there must not need the loader's lock (faults.bats runs it with cxx_host).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "secretmem.h"

static int secret = -1;

static void *work(void *arg)
{
	(void)arg;
	secretmem_scope_begin();
	void *volatile p = malloc(32);
	secretmem_scope_end();
	secret = secretmem_is_secret(p);
	free(p);
	return NULL;
}

__attribute__((constructor)) static void start(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, work, NULL) == 0)
		pthread_join(t, NULL);
}

int plugin_run(void)
{
	printf("plugin: scope in a constructor's thread, block secret=%d\n", secret);
	return 0;
}
