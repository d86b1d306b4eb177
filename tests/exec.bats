#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# A program under the shim that starts a program: itself again, with an
# environment of its own making (nginx's binary upgrade passes only TZ, haproxy's
# resetenv clears it), which keeps the shim and the rules; another program, whose
# environment is left as the program made it; a set-group-ID program, which the
# loader runs without LD_PRELOAD, said in a warning. The probe
# (tests/exec_prog.c) is built as distributions build: -O2 -g, -O3 -flto -fno-plt,
# and with clang where it is installed.

load helpers
load routing-helpers

setup_file() {
	rt_build
	rt_probe_variants exec_prog "$RT_BIN"
}

setup() {
	sm_setup
	read -ra VARIANTS <<<"$VARIANTS_LIST"
}

ex_run() { # VARIANT ARGS...: the probe under the shim, its own allocations secret
	local v=$1
	shift
	env LD_PRELOAD="$SHIM" SECRETMEM_LIBS=exec_prog SECRETMEM_LOG=info "$RT_BIN/$v/exec_prog" "$@"
}

@test "a program that runs itself again with only TZ in its environment (nginx's binary upgrade): the new one has the shim and the rule, its block is in /secretmem" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr ex_run "$v" execve
		assert_line "gen 0 secret 1 maps 1 preload set"
		assert_line "gen 1 secret 1 maps 1 preload set"
		[[ $stderr == *"runs itself again with an environment without the shim: LD_PRELOAD and 2 SECRETMEM_ variable(s) put back"* ]] ||
			fail "$v: no info line: $stderr"
	done
}

@test "execl, execle, execlp, fexecve and execveat of itself with only TZ in the environment: the new one is protected (glibc's own would go past the shim's execve)" {
	local v m
	for v in "${VARIANTS[@]}"; do
		for m in execl execle execlp fexecve execveat execveatfd; do
			run -0 --separate-stderr ex_run "$v" "$m"
			assert_line "gen 0 secret 1 maps 1 preload set"
			assert_line "gen 1 secret 1 maps 1 preload set"
			[[ $stderr == *"runs itself again with an environment without the shim"* ]] ||
				fail "$v $m: no info line: $stderr"
		done
	done
}

@test "started with a relative LD_PRELOAD, a program that changes directory and runs itself again with only TZ: the shim is put back by its absolute path" {
	local v dir
	dir=$(dirname "$SHIM")
	for v in "${VARIANTS[@]}"; do
		run -0 --separate-stderr bash -c 'cd "$1" && exec env LD_PRELOAD=./libsecretmem-preload.so SECRETMEM_LIBS=exec_prog "$2" chdir' _ "$dir" "$RT_BIN/$v/exec_prog"
		assert_line "gen 0 secret 1 maps 1 preload set"
		assert_line "gen 1 secret 1 maps 1 preload set"
		[[ $stderr != *"cannot be preloaded"* ]] || fail "$v: $stderr"
	done
}

@test "a program that clears its environment and runs itself again through the PATH search (haproxy's resetenv and reload): the new one is protected too" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 ex_run "$v" execvp
		assert_line "gen 0 secret 1 maps 1 preload set"
		assert_line "gen 1 secret 1 maps 1 preload set"
	done
}

@test "a program that deletes its file and runs itself again through /proc/self/exe with only TZ: the new one is protected" {
	local v
	for v in "${VARIANTS[@]}"; do
		mkdir -p "$BATS_TEST_TMPDIR/$v"
		cp "$RT_BIN/$v/exec_prog" "$BATS_TEST_TMPDIR/$v/exec_prog"
		run -0 env LD_PRELOAD="$SHIM" SECRETMEM_LIBS=exec_prog "$BATS_TEST_TMPDIR/$v/exec_prog" delself
		assert_line "gen 0 secret 1 maps 1 preload set"
		assert_line "gen 1 secret 1 maps 1 preload set"
	done
}

@test "posix_spawnp from a thread with the smallest stack (PTHREAD_STACK_MIN), with and without a rule: it runs" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 env LD_PRELOAD="$SHIM" "$RT_BIN/$v/exec_prog" smallstack # no rule
		assert_line "smallstack spawned 1"
		run -0 ex_run "$v" smallstack
		assert_line "smallstack spawned 1"
	done
}

@test "posix_spawn of itself with an empty environment: the child is protected" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 ex_run "$v" spawn
		assert_line "gen 1 secret 1 maps 1 preload set"
	done
}

@test "a variable the program sets itself for the new one is kept: SECRETMEM_MODE=off is obeyed" {
	local v
	for v in "${VARIANTS[@]}"; do
		run -0 ex_run "$v" modeoff
		assert_line "gen 0 secret 1 maps 1 preload set"
		assert_line "gen 1 secret 0 maps 0 preload set"
	done
}

@test "another program started with an environment of the program's own making keeps it: nothing is added" {
	run -0 ex_run o2 other /usr/bin/env
	assert_line "gen 0 secret 1 maps 1 preload set"
	assert_line "TZ=UTC"
	refute_line --partial "LD_PRELOAD"
	refute_line --partial "SECRETMEM_"
}

@test "a set-group-ID program started from a program under the shim: a warning says it runs without the shim; with no rule, no warning" {
	[[ $(id -u) == 0 ]] || skip "needs root (chgrp)"
	local sg=$BATS_TEST_TMPDIR/sgid
	mkdir -p "$sg"
	cp "$RT_BIN/o2/exec_prog" "$sg/exec_prog"
	chgrp nogroup "$sg/exec_prog"
	chmod 2755 "$sg/exec_prog"
	chmod 755 "$sg" "$BATS_TEST_TMPDIR"
	run -0 --separate-stderr ex_run o2 run "$sg/exec_prog"
	assert_line "gen 0 secret 0 maps 0 preload unset" # the set-group-ID one: no shim
	[[ $stderr == *"$sg/exec_prog is set-user-ID, set-group-ID or has file capabilities: the loader ignores LD_PRELOAD for it, so it runs without the shim and its secrets are not protected"* ]] ||
		fail "no warning: $stderr"
	# the same through a real program's execvp (coreutils timeout)
	run -0 --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_LIBS='*' timeout 10 "$sg/exec_prog" print
	[[ $stderr == *"is set-user-ID, set-group-ID or has file capabilities"* ]] || fail "timeout: no warning: $stderr"
	# control: no rule, nothing to protect, nothing said
	run -0 --separate-stderr env LD_PRELOAD="$SHIM" timeout 10 "$sg/exec_prog" print
	[[ $stderr != *"set-group-ID"* ]] || fail "warned with no rule: $stderr"
}
