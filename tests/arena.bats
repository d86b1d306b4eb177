#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The secret arena end to end, through the preload: what a process under the shim
# really does with its secret blocks. Core dumps (the kernel's and gcore's) leave
# them out; fork copies or drops them; posix_spawn and vfork work; every thread may
# allocate them; running out of secret memory (RLIMIT_MEMLOCK as an unprivileged
# user, SECRETMEM_MAX) gives NULL and ENOMEM with one warning; a kernel without
# memfd_secret (a seccomp filter answers ENOSYS) or without uncached mode stops the
# program or falls back as SECRETMEM_FALLBACK says; misuse aborts with glibc-style
# messages; freed and moved blocks are wiped; the statistics file is valid JSON.
# Each case checks the process from outside where it can: its smaps, what another
# process reads of it, its core file, how it ended.
#
# The unit tests in tests/unit/ test the arena's functions directly; these tests
# run tests/arena_prog.c (built in setup_file) under LD_PRELOAD.

load helpers
load routing-helpers

setup_file() {
	rt_build memread arena_prog seccomp_exec
	# Runs as nobody need the shim and the program in a directory nobody can reach
	# (the Bats temporary directories are private to root).
	NB_DIR=$(mktemp -d /tmp/secretmem-arena.XXXXXX)
	chmod 755 "$NB_DIR"
	cp "$SHIM" "$NB_DIR/libsecretmem-preload.so"
	cp "$RT_BIN/arena_prog" "$NB_DIR/arena_prog"
	chmod 755 "$NB_DIR"/*
	export NB_DIR
}

teardown_file() {
	[[ -n ${NB_DIR:-} && $NB_DIR == /tmp/secretmem-arena.* ]] && rm -rf "$NB_DIR"
	return 0
}

setup() {
	sm_setup
	PROG=$RT_BIN/arena_prog
	SECCOMP=$RT_BIN/seccomp_exec
	SITES=SECRETMEM_SITES=sites_secret_alloc
}

teardown() {
	stop_paused
}

# ---- helpers ----

# The string a "NAME_hex HEX" line of the paused program's output encodes.
hex_value() {
	local h
	h=$(awk -v n="$1_hex" '$1 == n { print $2 }' "$RT_OUT")
	[[ -n $h ]] || fail "no $1_hex line in the output"
	printf '%b' "$(sed 's/../\\x&/g' <<<"$h")"
}

# The VmFlags of the smaps entry of PID's mapping that holds ADDR.
vmflags_of() {
	local pid=$1 addr=$(($2)) line range lo hi in=0
	while IFS= read -r line; do
		if [[ $line =~ ^([0-9a-f]+)-([0-9a-f]+)\  ]]; then
			lo=$((16#${BASH_REMATCH[1]}))
			hi=$((16#${BASH_REMATCH[2]}))
			in=$((lo <= addr && addr < hi))
		elif ((in)) && [[ $line == VmFlags:* ]]; then
			echo "${line#VmFlags:}"
			return 0
		fi
	done <"/proc/$pid/smaps"
	return 1
}

# The mapping holding block NAME of the paused program has every one of FLAGS.
assert_vmflags() {
	local name=$1 flags addr f
	shift
	addr=$(block_addr "$name")
	flags=$(vmflags_of "$RT_PID" "$addr") || fail "$name at $addr: no smaps entry"
	for f in "$@"; do
		[[ " $flags " == *" $f "* ]] ||
			fail "$name at $addr: VmFlags '$flags' lack '$f' ($(maps_line_of "$RT_PID" "$addr"))"
	done
}

# Whether the kernel writes core files into the working directory (core_pattern
# a plain file name, not a pipe or a path): the core dump tests need it.
cores_in_cwd() {
	[[ $(cat /proc/sys/kernel/core_pattern) != *[/\|]* ]]
}

# The maps line of the arena's reserved range (PROT_NONE) that follows the chunk
# holding ADDR of PID, past the guard page.
reservation_of() {
	local pid=$1 end range rest lo
	end=$(maps_line_of "$pid" "$2")
	[[ -n $end ]] || return 0
	end=${end%% *}
	end=$((16#${end#*-}))
	while read -r range rest; do
		lo=$((16#${range%-*}))
		if ((lo == end || lo == end + 4096)) && [[ $rest == ---p* ]]; then
			echo "$range $rest"
			return 0
		fi
	done <"/proc/$pid/maps"
}

# The length of the range of a maps line.
range_bytes() {
	local range=${1%% *}
	echo $((16#${range#*-} - 16#${range%-*}))
}

# $stderr is exactly one line of the shim that contains every one of STRINGS.
assert_one_shim_line() {
	local -a errlines
	mapfile -t errlines <<<"$stderr"
	if [[ -z $stderr || ${#errlines[@]} -ne 1 ]]; then
		fail "expected exactly one line on stderr, got ${#errlines[@]}: $stderr"
	fi
	[[ $stderr == "$SM_PREFIX"* ]] || fail "stderr is not the shim's: $stderr"
	local s
	for s in "$@"; do
		[[ $stderr == *"$s"* ]] || fail "stderr does not name '$s': $stderr"
	done
}

# How many times the string S (no NUL in it) occurs in FILE: grep -c on the file
# cut at NUL bytes, so that a core full of zeros is not one huge line.
count_in() {
	tr '\0' '\n' <"$1" | grep -c -F -e "$2" || true
}

# Runs the rest as nobody, with RLIMIT_MEMLOCK set to BYTES, under the shim copied
# to $NB_DIR: as_nobody BYTES [VAR=VALUE...] PROGRAM ARGS...
as_nobody() {
	local bytes=$1
	shift
	prlimit --memlock="$bytes:$bytes" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups \
		env LD_PRELOAD="$NB_DIR/libsecretmem-preload.so" "$@"
}

# ---- core dumps ----

@test "kernel core dump: the secret string is not in the core, the control string is" {
	cores_in_cwd || skip "core_pattern $(cat /proc/sys/kernel/core_pattern) does not write to the working directory"
	cd "$BATS_TEST_TMPDIR"
	ulimit -c unlimited
	start_paused "$PROG" hold
	assert_lives_secret secret
	assert_lives_ordinary control "$(hex_value control)"
	secret=$(hex_value secret)
	control=$(hex_value control)
	[[ ${#secret} -eq 48 && ${#control} -eq 48 ]] || fail "bad strings: '$secret' '$control'"
	# SIGABRT dumps core
	kill -ABRT "$RT_PID"
	wait "$RT_JOB" || true
	RT_JOB=
	core=$(ls core* 2>/dev/null | head -1)
	[[ -n $core && -s $core ]] || fail "no core file in $PWD (core_pattern $(cat /proc/sys/kernel/core_pattern))"
	assert_equal "$(count_in "$core" "$control")" 1
	assert_equal "$(count_in "$core" "$secret")" 0
	rm -f core*
}

@test "gcore: the secret string (SECRETMEM_SITES) is not in the core, the control string is; VmFlags lo dd" {
	command -v gcore >/dev/null || fail "gcore is missing: install gdb"
	cd "$BATS_TEST_TMPDIR"
	# gcore dumps the arena's whole PROT_NONE reservation as zeros (64 GiB, a
	# minute and a half; see the test after this one): a 1.5 GiB address space
	# limit makes the shim reserve its minimum, 1 GiB, instead.
	start_paused_under prlimit --as=1600000000 -- "$SITES" "$PROG" --sites hold
	assert_lives_secret secret
	assert_lives_ordinary control "$(hex_value control)"
	assert_vmflags secret lo dd
	secret=$(hex_value secret)
	control=$(hex_value control)
	# (never let gcore write 64 GiB: the limit must have worked)
	res=$(reservation_of "$RT_PID" "$(block_addr secret)")
	[[ -n $res ]] || fail "no reserved range after the chunk"
	(($(range_bytes "$res") <= 1 << 30)) || fail "the reservation is not the minimum: $res"
	run -0 gcore -o "$BATS_TEST_TMPDIR/gcore" "$RT_PID"
	core=$BATS_TEST_TMPDIR/gcore.$RT_PID
	[[ -s $core ]] || fail "gcore wrote no $core: $output"
	assert_equal "$(count_in "$core" "$control")" 1
	assert_equal "$(count_in "$core" "$secret")" 0
	rm -f "$core"
	# and the program lives on, its secret intact
	kill -0 "$RT_PID"
	rt_output
	assert_lives_secret secret
}

@test "the arena's reserved address range is excluded from core dumps (VmFlags dd)" {
	# Without dd, gcore (which reads PROT_NONE ranges through /proc/PID/mem) writes
	# the whole reservation, 64 GiB of zeros, into the core file: measured 95 s
	# and 65 GB of disk for a program holding one secret string. ASan marks its
	# shadow reservation MADV_DONTDUMP for the same reason.
	start_paused "$PROG" hold
	res=$(reservation_of "$RT_PID" "$(block_addr secret)")
	[[ -n $res ]] || fail "no reserved range after the chunk: $(cat "/proc/$RT_PID/maps")"
	flags=$(vmflags_of "$RT_PID" "0x${res%%-*}")
	[[ " $flags " == *" dd "* ]] ||
		fail "the reservation $res ($(($(range_bytes "$res") >> 20)) MiB) is dumped: VmFlags '$flags' lack dd"
}

# ---- fork ----

@test "fork, copy mode: parent, child and grandchild each see only their own writes" {
	run -0 --separate-stderr with_shim "$PROG" fork
	assert_equal "$stderr" ""
	refute_output --partial FAIL
	for g in 1 2 3; do
		assert_line "gen$g sees the contents from before the fork ok"
		assert_line "gen$g sees only its own writes after the parent wrote ok"
		assert_line "gen$g blocks are secret ok"
		assert_line "gen$g blocks are in /secretmem mappings ok"
		assert_line "gen$g allocates fresh secret memory ok"
		assert_line "gen$g exit status ok"
	done
	for g in 0 1 2; do
		assert_line "gen$g does not see the child's writes ok"
		assert_line "gen$g sees only its own writes after the child wrote ok"
	done
	assert_equal "$(grep -c ' ok$' <<<"$output")" 27
}

@test "fork, copy mode: the child's copy is secret memory, unreadable from outside" {
	start_paused "$PROG" fork pause
	refute_output --partial FAIL
	child=$(awk '$1 == "child_pid" { print $2 }' "$RT_OUT")
	[[ -n $child && $child != "$RT_PID" ]] || fail "no child_pid line: $output"
	kill -0 "$child"
	for b in small large sparse; do
		assert_lives_secret "$b"
	done
	parent=$RT_PID
	RT_PID=$child
	for b in small large sparse; do
		assert_lives_secret "$b"
		assert_vmflags "$b" lo dd
	done
	# its own file, not the parent's: another inode behind the same address
	p_line=$(maps_line_of "$parent" "$(block_addr small)")
	c_line=$(maps_line_of "$child" "$(block_addr small)")
	[[ $(awk '{ print $5 }' <<<"$p_line") != "$(awk '{ print $5 }' <<<"$c_line")" ]] ||
		fail "parent and child map the same secretmem file: $p_line / $c_line"
	RT_PID=$parent
}

@test "fork, drop mode: the child faults on the parent's blocks, frees them harmlessly, allocates its own" {
	run -0 --separate-stderr with_shim SECRETMEM_FORK=drop "$PROG" drop
	assert_equal "$stderr" ""
	refute_output --partial FAIL
	assert_line "child: fresh secret blocks ok"
	assert_line "child: fresh blocks in /secretmem ok"
	assert_line "child: fresh blocks hold what it wrote ok"
	assert_line "child_fresh exit=0"
	assert_line "child: freed the parent's blocks"
	assert_line "child_free_parent_blocks exit=0"
	assert_line "child_read_parent_small signal=SEGV"
	assert_line "child_write_parent_large signal=SEGV"
	assert_line "parent: blocks intact ok"
	refute_line --partial "child: read"
	refute_line "child: wrote"
}

@test "posix_spawn, vfork, system and popen while holding secrets, in both fork modes" {
	for mode in copy drop; do
		run -0 --separate-stderr with_shim SECRETMEM_FORK=$mode "$PROG" spawn
		assert_equal "$stderr" ""
		assert_output "posix_spawn exit=0
vfork_exec exit=5
vfork_exit exit=6
system exit=7
popen read spawned exit=0
posix_spawn_in_scope exit=0
secrets intact ok"
	done
}

# ---- threads ----

# assert_all_secret_transparent MIN PROGRAM ARGS...: runs PROGRAM without the shim
# and with SECRETMEM_LIBS='*': same stdout, same status, no stderr; then $output is
# "BACKEND ALLOCS>MIN FREES>MIN ENOMEM" from its statistics (the proof that the
# allocations really were secret).
assert_all_secret_transparent() {
	local min=$1
	shift
	run --separate-stderr "$@"
	base_status=$status base_output=$output
	stats=$BATS_TEST_TMPDIR/stats.json
	run --separate-stderr with_shim SECRETMEM_LIBS='*' SECRETMEM_STATS="$stats" "$@"
	assert_equal "$stderr" ""
	assert_equal "$status" "$base_status"
	assert_equal "$output" "$base_output"
	run -0 python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["backend"], s["allocs"] > int(sys.argv[2]), s["frees"] > int(sys.argv[2]), s["enomem"])
' "$stats" "$min"
}

@test "threads: every allocation secret (SECRETMEM_LIBS='*'), errors=0, output as without the shim" {
	sm_need_programs "$THREADS"
	run -0 "$THREADS"
	assert_output --regexp 'errors=0$'
	# threads makes about 30000 allocations and frees
	assert_all_secret_transparent 10000 "$THREADS"
	[[ $output == "memfd_secret True True 0" ]] || fail "stats: $output"
}

@test "cxxprog: every allocation secret (SECRETMEM_LIBS='*'), output as without the shim" {
	sm_need_programs "$CXXPROG"
	run -0 "$CXXPROG"
	assert_line "PASSED: 0 failed"
	assert_all_secret_transparent 10000 "$CXXPROG"
	# its vector.reserve(max_size()) fails, as it must, in secret memory too
	[[ $output =~ ^memfd_secret\ True\ True\ [1-9][0-9]*$ ]] || fail "stats: $output"
}

# ---- out of secret memory ----

@test "RLIMIT_MEMLOCK 512 KiB as nobody: NULL and ENOMEM, one warning, the ordinary heap works" {
	for size in 16384 100; do
		run -0 --separate-stderr as_nobody 524288 "$SITES" "$NB_DIR/arena_prog" --sites exhaust $size
		# The limit less the 64 KiB kept back for fork copies and the pages of
		# the standard streams' secret buffers; a small block's slabs may leave
		# a little unused
		assert_line --regexp '^null after (3[89][0-9]{4}|4[0-9]{5}) bytes errno=ENOMEM$'
		assert_line "again null=1 errno=ENOMEM"
		assert_line "ordinary allocations ok"
		assert_line "secret allocation after free ok"
		assert_one_shim_line "out of secret memory" "RLIMIT_MEMLOCK" "ulimit -l"
	done
}

@test "SECRETMEM_MAX=256K as root: NULL and ENOMEM, one warning naming SECRETMEM_MAX" {
	run -0 --separate-stderr with_shim SECRETMEM_MAX=256K "$SITES" "$PROG" --sites exhaust 16384
	# 256 KiB less the pages of stdin's and stdout's secret buffers: 15 blocks
	assert_line "null after $(((262144 - 2 * 4096) / 16384 * 16384)) bytes errno=ENOMEM"
	assert_line "again null=1 errno=ENOMEM"
	assert_line "ordinary allocations ok"
	assert_line "secret allocation after free ok"
	assert_one_shim_line "out of secret memory" "262144" "SECRETMEM_MAX"
}

@test "RLIMIT_MEMLOCK 0 as nobody: stopped before main with one line naming the limit" {
	run -78 --separate-stderr as_nobody 0 "$SITES" "$NB_DIR/arena_prog" --sites exhaust 100
	assert_output ""
	assert_one_shim_line "RLIMIT_MEMLOCK" "ulimit -l"
}

@test "too small an RLIMIT_MEMLOCK: raising it to what the message asks for is enough" {
	# (the fork copy's window takes a sixteenth of a limit under 1 MiB, a page
	# at least: 69631 bytes leave 65535, one less than the first chunk)
	for bytes in 0 32768 65536 69631; do
		run -78 --separate-stderr as_nobody $bytes "$SITES" "$NB_DIR/arena_prog" --sites exhaust 100
		need=$(sed -n 's/.*less than the \([0-9]*\) needed.*/\1/p' <<<"$stderr")
		[[ -n $need ]] || fail "RLIMIT_MEMLOCK=$bytes: the message names no amount: $stderr"
		run --separate-stderr as_nobody "$need" "$SITES" "$NB_DIR/arena_prog" --sites exhaust 100
		((status == 0)) ||
			fail "RLIMIT_MEMLOCK=$bytes asked for $need bytes, but with $need: status $status, $stderr"
	done
}

@test "SECRETMEM_MAX reached while another thread allocates ordinary memory" {
	run -0 --separate-stderr with_shim SECRETMEM_MAX=256K "$PROG" maxthread
	# 256 KiB less the pages of the standard streams' secret buffers
	assert_line "secret null after 15 blocks errno=ENOMEM"
	assert_line "other thread iterations_before_done=1 errors=0 finished=1"
	assert_one_shim_line "out of secret memory" "SECRETMEM_MAX"
}

# ---- no memfd_secret: a seccomp filter answers ENOSYS ----

@test "no memfd_secret, SECRETMEM_FALLBACK=none or exclusive: stopped before main" {
	for fb in none exclusive; do
		run -78 --separate-stderr "$SECCOMP" env LD_PRELOAD="$SHIM" "$SITES" \
			SECRETMEM_FALLBACK=$fb "$PROG" --sites exhaust 100
		assert_output ""
		assert_one_shim_line "memfd_secret" "ENOSYS" "SECRETMEM_FALLBACK=mlock"
	done
	# the filter alone does not stop a program without the shim
	run -0 "$SECCOMP" /bin/true
}

@test "no memfd_secret, SECRETMEM_FALLBACK=mlock: locked, undumpable, but readable memory" {
	cd "$BATS_TEST_TMPDIR"
	ulimit -c unlimited
	start_paused_under "$SECCOMP" -- "$SITES" SECRETMEM_FALLBACK=mlock "$PROG" --sites hold
	stderr=$(cat "$RT_ERR")
	assert_one_shim_line "ENOSYS" "SECRETMEM_FALLBACK=mlock" "direct map"
	assert_block secret 1
	addr=$(block_addr secret)
	line=$(maps_line_of "$RT_PID" "$addr")
	[[ -n $line && $line != *" /secretmem (deleted)" && $line == *" rw-p "* ]] ||
		fail "the secret block is not in a private anonymous mapping: $line"
	assert_vmflags secret lo dd
	! grep -q ' /secretmem (deleted)$' "/proc/$RT_PID/maps" || fail "a /secretmem mapping exists with the filter"
	# The weaker protection, as the warning says: root reads it.
	secret=$(hex_value secret)
	run -0 "$RT_BIN/memread" mem "$RT_PID" "$addr" 64
	assert_output "OK $secret"
	# but it stays out of core dumps
	if cores_in_cwd; then
		kill -ABRT "$RT_PID"
		wait "$RT_JOB" || true
		RT_JOB=
		core=$(ls core* 2>/dev/null | head -1)
		[[ -n $core ]] || fail "no core file"
		assert_equal "$(count_in "$core" "$secret")" 0
		assert_equal "$(count_in "$core" "$(hex_value control)")" 1
		rm -f core*
	fi
}

@test "memfd_secret refused with EPERM: stopped before main whatever the fallback" {
	for fb in none mlock; do
		run -78 --separate-stderr "$SECCOMP" -e EPERM env LD_PRELOAD="$SHIM" "$SITES" \
			SECRETMEM_FALLBACK=$fb "$PROG" --sites exhaust 100
		assert_output ""
		assert_one_shim_line "memfd_secret" "EPERM" "seccomp"
	done
}

# ---- uncached mode ----

@test "SECRETMEM_MODE=uncached, SECRETMEM_FALLBACK=none: stopped before main" {
	run -78 --separate-stderr with_shim SECRETMEM_MODE=uncached "$SITES" "$PROG" --sites exhaust 100
	assert_output ""
	assert_one_shim_line "exclusive secret memory only" "SECRETMEM_MODE" "SECRETMEM_FALLBACK"
	run -78 --separate-stderr with_shim SECRETMEM_MODE=uncached SECRETMEM_FALLBACK=none \
		"$SITES" "$PROG" --sites exhaust 100
	assert_one_shim_line "exclusive secret memory only"
}

@test "SECRETMEM_MODE=uncached, SECRETMEM_FALLBACK=exclusive or mlock: one warning, blocks in /secretmem" {
	for fb in exclusive mlock; do
		start_paused SECRETMEM_MODE=uncached SECRETMEM_FALLBACK=$fb "$SITES" "$PROG" --sites hold
		stderr=$(cat "$RT_ERR")
		assert_one_shim_line "SECRETMEM_MODE=uncached" "exclusive"
		assert_lives_secret secret
		assert_lives_ordinary control "$(hex_value control)"
		stop_paused
	done
}

# ---- misuse ----

# misuse KIND MESSAGE: arena_prog misuse KIND dies of SIGABRT (status 134) with
# exactly the shim's MESSAGE about the pointer it printed.
assert_misuse() {
	local kind=$1 msg=$2 ptr
	ulimit -c 0
	run -134 --separate-stderr with_shim "$SITES" "$PROG" --sites misuse "$kind"
	refute_line survived
	ptr=$(awk '$1 == "ptr" { print $2 }' <<<"$output")
	[[ $ptr == 0x* ]] || fail "$kind: no ptr line: $output"
	assert_equal "$stderr" "${SM_PREFIX}${msg//PTR/$ptr}"
}

@test "misuse: double free of a secret block aborts" {
	assert_misuse double-small "free(): double free of secret block PTR"
	assert_misuse double-large "free(): double free of secret block PTR"
}

@test "misuse: free of a pointer inside a secret block aborts" {
	assert_misuse interior-small "free(): invalid pointer PTR (inside a secret block, not at its start)"
	assert_misuse interior-large "free(): invalid pointer PTR (inside a secret block, not at its start)"
}

@test "misuse: realloc of a freed secret block aborts" {
	assert_misuse realloc-freed-small "realloc(): invalid pointer PTR (secret block already freed)"
	assert_misuse realloc-freed-large "realloc(): invalid pointer PTR (secret block already freed)"
}

# ---- wipe ----

@test "wipe: freed secret blocks, blocks realloc moves or shrinks, and ordinary blocks moved in read zero" {
	run -0 --separate-stderr with_shim "$PROG" wipe
	assert_equal "$stderr" ""
	# the pattern was there before
	assert_line "small usable=224 pattern=224"
	assert_line "small freed nonzero_after_links=0"
	assert_line "small reused same=1 nonzero=0"
	assert_line "large freed nonzero=0"
	assert_line "large reused same=1 nonzero=0"
	assert_line "small moved moved=1 copied=1 old_nonzero_after_links=0"
	assert_line "large moved moved=1 copied=1 old_nonzero=0"
	assert_line "large shrunk in_place=1 kept=1 tail_nonzero=0"
	assert_line "ordinary to secret moved=1 secret=1 copied=1 old_nonzero_after_links=0"
	refute_output --partial FAIL
}

# ---- statistics ----

@test "SECRETMEM_STATS=FILE.json: valid JSON that counts the secret allocations" {
	stats=$BATS_TEST_TMPDIR/stats.%p.json
	run -0 --separate-stderr with_shim SECRETMEM_STATS="$stats" "$SITES" "$PROG" --sites wipe
	files=("$BATS_TEST_TMPDIR"/stats.*.json)
	[[ ${#files[@]} -eq 1 && -f ${files[0]} ]] || fail "no single stats file: ${files[*]}"
	run -0 python3 -m json.tool "${files[0]}"
	run -0 python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["backend"], s["allocs"], s["frees"], s["enomem"], s["allocs"] >= s["frees"])
' "${files[0]}"
	[[ $output =~ ^memfd_secret\ ([0-9]+)\ ([0-9]+)\ 0\ True$ ]] || fail "stats: $output"
	((BASH_REMATCH[1] > 0 && BASH_REMATCH[2] > 0)) || fail "stats: $output"
}
