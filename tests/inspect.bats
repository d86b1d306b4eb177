#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# secretmem-inspect, run by root, against a process of another user that tries to
# fool it or hurt it (tests/inspect_target.c): damaged ELF objects with offsets that
# wrap around 2^64, a FIFO or a symlink where the mapped shim file was, file names
# with terminal escapes, forged live statistics, a secret hidden in a PROT_NONE
# page. Each case is checked by what the inspector did (its exit status, that it
# returned at all, what it opened) and against what the process really holds.
# The crafted inputs also run against the ASan+UBSan build of the inspector
# (tools/secretmem-inspect-asan, built by make check when the compiler has ASan).

load helpers
load routing-helpers

setup_file() {
	rt_build memread inspect_target
}

setup() {
	sm_setup
	INSPECT=$abs_top_builddir/tools/secretmem-inspect
	[[ -x $INSPECT ]] || fail "$INSPECT is missing: build first (make)"
	INSPECTORS=("$INSPECT")
	if [[ -x $abs_top_builddir/tools/secretmem-inspect-asan ]]; then
		INSPECTORS+=("$abs_top_builddir/tools/secretmem-inspect-asan")
	fi
	AS_NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	"${AS_NOBODY[@]}" true || skip "setpriv cannot switch to nobody here"
	# The hostile process's own directory: it owns it and everything in it.
	DIR=$(mktemp -d /tmp/secretmem-inspect.XXXXXX)
	chmod 755 "$DIR"
	cp "$RT_BIN/inspect_target" "$SHIM" "$DIR/"
	chmod a+rx "$DIR"/*
	chown -R nobody:nogroup "$DIR"
	TARGET=$DIR/inspect_target
	WRITER=
}

teardown() {
	stop_paused
	if [[ -n $WRITER ]]; then
		kill "$WRITER" 2>/dev/null || true
		wait "$WRITER" 2>/dev/null || true
	fi
	rm -rf "$DIR"
}

# start_paused_under truncates its output file in the background job: a test that
# starts a second process could read the first one's READY (and PID) before the
# truncation. Each start here begins with an empty file.
fresh_output() {
	: >"$BATS_TEST_TMPDIR/paused.out"
}

# As nobody, with no shim: the process only maps files.
start_target() {
	fresh_output
	local shim=$SHIM
	SHIM=
	start_paused_under "${AS_NOBODY[@]}" -- env -u LD_PRELOAD "$TARGET" "$@"
	SHIM=$shim
}

# As nobody, under the copy of the shim in $DIR (nobody cannot reach the build tree).
start_target_shim() {
	fresh_output
	local shim=$SHIM
	SHIM=$DIR/libsecretmem-preload.so
	start_paused_under "${AS_NOBODY[@]}" prlimit --memlock=1048576:1048576 -- "$@"
	SHIM=$shim
}

# Text output with no byte that a terminal would act on: only printable ASCII and
# newlines.
assert_no_control_bytes() {
	if LC_ALL=C grep -q '[^[:print:]]' <<<"$1"; then
		fail "control bytes in the output: $(od -c <<<"$1" | head -n 20)"
	fi
}

# The secret files of the PROT_NONE case: random text, so that memread shows it.
make_secrets() {
	PLAIN_FILE=$DIR/plain.txt
	SECRET_FILE=$DIR/secret.txt
	od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$PLAIN_FILE"
	od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$SECRET_FILE"
	chmod a+r "$PLAIN_FILE" "$SECRET_FILE"
	PLAIN=$(cat "$PLAIN_FILE")
	SECRET=$(cat "$SECRET_FILE")
	PLAIN_HEX=$(od -An -tx1 -v "$PLAIN_FILE" | tr -d ' \n')
	SECRET_HEX=$(od -An -tx1 -v "$SECRET_FILE" | tr -d ' \n')
	((${#PLAIN_HEX} == 64 && ${#SECRET_HEX} == 64)) || fail "cannot make the test secrets"
}

# ==== item 5: damaged ELF objects ====

@test "inspect: a mapped ELF object whose offsets wrap around 2^64 is reported, never a crash" {
	local kind inspector
	for kind in shoff-wrap dynsym-wrap strtab-wrap truncated; do
		start_target craft "$kind" "$DIR/libsecretmem-preload.so"
		for inspector in "${INSPECTORS[@]}"; do
			run --separate-stderr timeout 30 "$inspector" "$RT_PID"
			((status == 0)) || fail "$kind, ${inspector##*/}: exit status $status, stderr: $stderr"
			assert_line "shim loaded:       yes ($DIR/libsecretmem-preload.so)"
			assert_line "live stats:        the mapped shim file is not a valid ELF object of the shim"
			run --separate-stderr -0 timeout 30 "$inspector" --json "$RT_PID"
			run python3 -c 'import json, sys; d = json.loads(sys.argv[1]); assert d["stats"] is None, d' "$output"
			assert_success
		done
		stop_paused
	done
}

@test "inspect: the control: the same object undamaged is read, and a name with no NUL is no match" {
	local kind inspector
	for kind in valid noterm; do
		start_target craft "$kind" "$DIR/libsecretmem-preload.so"
		for inspector in "${INSPECTORS[@]}"; do
			# valid: the symbol is found and read (it points into the section headers, no
			# magic); noterm: its name runs off the end of the file, so no symbol
			run --separate-stderr -0 timeout 30 "$inspector" "$RT_PID"
			assert_line "live stats:        not exposed (start the process with SECRETMEM_STATS set)"
		done
		stop_paused
	done
}

# ==== item 6: what root opens ====

# The process runs under its copy of the shim with live statistics and one secret
# block; then its shim file is unlinked and "PATH (deleted)", the name the kernel
# now shows, is made a FIFO (or what $1 says).
start_deleted_shim() {
	make_secrets
	start_target_shim SECRETMEM_STATS=1 "$TARGET" protnone \
		"$PLAIN_FILE" "$SECRET_FILE"
	assert_block secret 1
	"${AS_NOBODY[@]}" rm "$DIR/libsecretmem-preload.so"
	grep -qF "$DIR/libsecretmem-preload.so (deleted)" "/proc/$RT_PID/maps" ||
		fail "the kernel does not show the mapping as deleted"
}

@test "inspect: a FIFO at 'PATH (deleted)': root does not block, reads the mapped file itself" {
	start_deleted_shim
	"${AS_NOBODY[@]}" mkfifo "$DIR/libsecretmem-preload.so (deleted)"
	local inspector
	for inspector in "${INSPECTORS[@]}"; do
		run --separate-stderr timeout 20 "$inspector" "$RT_PID"
		((status == 0)) || fail "${inspector##*/}: exit status $status (124: it blocked on the FIFO)"
		assert_line "shim loaded:       yes ($DIR/libsecretmem-preload.so (deleted))"
		assert_line --regexp '^secret allocs: +1 \(frees 0\)$'
		run --separate-stderr -0 timeout 20 "$inspector" --json "$RT_PID"
		run python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["stats"]["allocs"] == 1 and d["stats_invalid"] == [], d
' "$output"
		assert_success
	done
}

@test "inspect: a FIFO at 'PATH (deleted)', inspected by the process's own user: no block, a clear line" {
	start_deleted_shim
	"${AS_NOBODY[@]}" mkfifo "$DIR/libsecretmem-preload.so (deleted)"
	cp "$INSPECT" "$DIR/secretmem-inspect"
	chmod a+rx "$DIR/secretmem-inspect"
	# nobody has no map_files access: the inspector falls back to the name
	run "${AS_NOBODY[@]}" cat "/proc/$RT_PID/map_files/$(awk '/libsecretmem-preload/ { print $1; exit }' "/proc/$RT_PID/maps")"
	assert_failure
	run --separate-stderr timeout 20 "${AS_NOBODY[@]}" "$DIR/secretmem-inspect" "$RT_PID"
	((status == 0)) || fail "exit status $status (124: it blocked on the FIFO)"
	assert_line --regexp '^live stats: +cannot open the mapped shim file'
}

@test "inspect: a symlink at 'PATH (deleted)': root without map_files access never opens its target" {
	start_deleted_shim
	# The symlink points at a FIFO with a writer waiting: if anything opens the
	# FIFO for reading, the writer gets through and leaves a mark.
	mkfifo "$DIR/host-fifo"
	(echo x >"$DIR/host-fifo" && touch "$DIR/opened") 3>&- &
	WRITER=$!
	"${AS_NOBODY[@]}" ln -s "$DIR/host-fifo" "$DIR/libsecretmem-preload.so (deleted)"
	# root in a container: no CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE, so no map_files
	local nocap=(setpriv --bounding-set=-sys_admin,-checkpoint_restore)
	run "${nocap[@]}" cat "/proc/$RT_PID/map_files/$(awk '/libsecretmem-preload/ { print $1; exit }' "/proc/$RT_PID/maps")"
	assert_failure
	local inspector
	for inspector in "${INSPECTORS[@]}"; do
		run --separate-stderr timeout 20 "${nocap[@]}" "$inspector" "$RT_PID"
		((status == 0)) || fail "${inspector##*/}: exit status $status, stderr: $stderr"
		assert_line --regexp '^live stats: +cannot open the mapped shim file'
		sleep 0.2
		[[ ! -e $DIR/opened ]] || fail "${inspector##*/} opened the symlink's target"
	done
}

@test "inspect: a directory on the way made a symlink: root without map_files access does not follow it" {
	make_secrets
	mkdir "$DIR/sub"
	cp "$SHIM" "$DIR/sub/libsecretmem-preload.so"
	chown -R nobody:nogroup "$DIR/sub"
	local shim=$SHIM
	SHIM=$DIR/sub/libsecretmem-preload.so
	fresh_output
	start_paused_under "${AS_NOBODY[@]}" prlimit --memlock=1048576:1048576 -- \
		SECRETMEM_STATS=1 "$TARGET" protnone "$PLAIN_FILE" "$SECRET_FILE"
	SHIM=$shim
	local nocap=(setpriv --bounding-set=-sys_admin,-checkpoint_restore) inspector
	# the control: by its own name, the file is read (the stats are shown)
	for inspector in "${INSPECTORS[@]}"; do
		run --separate-stderr -0 timeout 20 "${nocap[@]}" "$inspector" "$RT_PID"
		assert_line --regexp '^secret allocs: +1 \(frees 0\)$'
	done
	# The kernel shows a renamed file at its new place, so the name goes through
	# a symlink only once the file is unlinked: a hard link elsewhere keeps it,
	# under the name the kernel now shows, behind a symlink in place of sub.
	mkdir "$DIR/real"
	chown nobody:nogroup "$DIR/real"
	"${AS_NOBODY[@]}" ln "$DIR/sub/libsecretmem-preload.so" "$DIR/real/libsecretmem-preload.so (deleted)"
	"${AS_NOBODY[@]}" rm "$DIR/sub/libsecretmem-preload.so"
	"${AS_NOBODY[@]}" rmdir "$DIR/sub"
	"${AS_NOBODY[@]}" ln -s real "$DIR/sub"
	grep -qF "$DIR/sub/libsecretmem-preload.so (deleted)" "/proc/$RT_PID/maps" ||
		fail "the kernel does not show the old name: $(grep libsecretmem "/proc/$RT_PID/maps")"
	# the name now leads to the mapped file itself, but through the symlink
	[[ $(stat -Lc %i "$DIR/sub/libsecretmem-preload.so (deleted)") == \
		$(stat -Lc %i "/proc/$RT_PID/map_files/$(awk '/libsecretmem-preload/ { print $1; exit }' "/proc/$RT_PID/maps")") ]] ||
		fail "not the same inode"
	for inspector in "${INSPECTORS[@]}"; do
		run --separate-stderr -0 timeout 20 "${nocap[@]}" "$inspector" "$RT_PID"
		assert_line --regexp '^live stats: +cannot open the mapped shim file'
		# root with map_files reads the mapped file itself, whatever its name
		run --separate-stderr -0 timeout 20 "$inspector" "$RT_PID"
		assert_line --regexp '^secret allocs: +1 \(frees 0\)$'
	done
}

# ==== item 7: bytes from the process ====

@test "inspect: a file name with terminal escapes is printed escaped, and exact in JSON" {
	local name=$DIR/$'\e]0;owned\a\e[2J\x7f\xff\\'libsecretmem-preload.so
	start_target craft valid "$name"
	local inspector
	for inspector in "${INSPECTORS[@]}"; do
		run --separate-stderr -0 "$inspector" "$RT_PID"
		assert_no_control_bytes "$output"
		assert_line "shim loaded:       yes ($DIR/\\x1b]0;owned\\x07\\x1b[2J\\x7f\\xff\\\\libsecretmem-preload.so)"
		run --separate-stderr -0 "$inspector" --json "$RT_PID"
		assert_no_control_bytes "$output"
		run python3 -c '
import json, os, sys
d = json.loads(sys.argv[1])
assert d["shim_loaded"] is True, d
got = d["shim_path"].encode("latin-1")
assert got == os.fsencode(sys.argv[2]), (got, sys.argv[2])
' "$output" "$name"
		assert_success
	done
}

@test "inspect: forged live statistics: marked as the process's own, invalid values rejected, JSON intact" {
	start_target_shim SECRETMEM_STATS=1 "$TARGET" forge
	local inspector
	for inspector in "${INSPECTORS[@]}"; do
		run --separate-stderr -0 "$inspector" --json "$RT_PID"
		assert_no_control_bytes "$output"
		run python3 -c '
import json, sys
d = json.loads(sys.argv[1])
errors = []
if d["shim_loaded"] is not True: errors.append("shim_loaded is not true")
s = d["stats"]
for f in ("mode", "backend", "allocs", "live_bytes", "limit"):
    if s[f] is not None: errors.append(f"{f} is {s[f]!r}, not null")
    if f not in d["stats_invalid"]: errors.append(f"{f} not in stats_invalid")
if s["frees"] != 1: errors.append("frees: the one plausible value is kept")
src = d["sources"]
if src["reported_by_process"] != ["stats"] or "stats" in src["measured"]: errors.append(f"sources: {src}")
if "shim_loaded" not in src["measured"]: errors.append(f"sources: {src}")
assert not errors, (errors, d)
' "$output"
		assert_success
		run --separate-stderr -0 "$inspector" "$RT_PID"
		assert_no_control_bytes "$output"
		assert_line "mode, backend:     invalid, invalid"
		assert_line "secret allocs:     invalid (frees 1)"
		assert_line --regexp '^invalid fields: +[0-9]+ '
		# the measured figures come first, under their own heading, then the
		# process's own
		local measured reported
		measured=$(grep -n '^-- measured by secretmem-inspect' <<<"$output" | cut -d: -f1)
		reported=$(grep -n '^-- reported by the process itself' <<<"$output" | cut -d: -f1)
		[[ -n $measured && -n $reported ]] || fail "no headings: $output"
		((measured < $(grep -n '^secret mappings:' <<<"$output" | cut -d: -f1) &&
			reported < $(grep -n '^mode, backend:' <<<"$output" | cut -d: -f1))) ||
			fail "the figures are not under their headings: $output"
	done
}

# ==== item 8: PROT_NONE pages ====

@test "inspect --find: a secret in a PROT_NONE ordinary page is found; the shim's secret block is not" {
	make_secrets
	start_target_shim "$TARGET" protnone "$PLAIN_FILE" "$SECRET_FILE"
	local none
	none=$(block_addr none)
	[[ $(maps_line_of "$RT_PID" "$none") == *" ---p "* ]] || fail "not PROT_NONE: $(maps_line_of "$RT_PID" "$none")"
	# the control: root reads the PROT_NONE page, and cannot read the secret block
	run -0 "$RT_BIN/memread" mem "$RT_PID" "$none" 32
	assert_output "OK $PLAIN"
	rt_output
	assert_lives_secret secret
	local inspector nsecret
	# (not $DIR's files: their path contains "/secretmem" too)
	nsecret=$(grep -c '/secretmem (deleted)$' "/proc/$RT_PID/maps")
	((nsecret >= 1)) || fail "no secret mapping"
	for inspector in "${INSPECTORS[@]}"; do
		run --separate-stderr -0 "$inspector" "$RT_PID"
		assert_line "secret mappings:   $nsecret"
		run --separate-stderr -3 timeout 60 "$inspector" --find "$PLAIN_HEX" "$RT_PID"
		assert_line "found $PLAIN_HEX at $none"
		assert_line --regexp "^search results: +$PLAIN_HEX: 1\$"
		run --separate-stderr -0 timeout 60 "$inspector" --find "$SECRET_HEX" "$RT_PID"
		assert_line --regexp "^search results: +$SECRET_HEX: 0\$"
		run --separate-stderr -3 timeout 60 "$inspector" --json --find "$SECRET_HEX" --find "$PLAIN_HEX" "$RT_PID"
		run python3 -c '
import json, sys
d = json.loads(sys.argv[1]); n = int(sys.argv[2])
s = d["scan"]
assert [f["hits"] for f in s["found"]] == [0, 1], s
assert s["unreadable_mappings"] >= n and s["bytes_unreadable"] >= 4096 * n, s
' "$output" "$nsecret"
		assert_success
	done
}

@test "inspect --find: a needle across a 1 MiB step boundary is counted once" {
	# The target maps a 3 MiB file whose only copy of the needle straddles the
	# first 1 MiB boundary, and another copy starting exactly at the second one.
	local f=$DIR/big.bin needle=0123456789abcdef0123456789abcdef
	head -c $((3 << 20)) /dev/zero >"$f"
	printf '%s' "$needle" | dd of="$f" bs=1 seek=$(((1 << 20) - 16)) conv=notrunc status=none
	printf '%s' "$needle" | dd of="$f" bs=1 seek=$((2 << 20)) conv=notrunc status=none
	chown nobody:nogroup "$f"
	start_target map "$f"
	local hex inspector
	hex=$(printf '%s' "$needle" | od -An -tx1 -v | tr -d ' \n')
	for inspector in "${INSPECTORS[@]}"; do
		# a shorter needle too: the overlap is set by the longest
		run --separate-stderr -3 "$inspector" --find "$hex" --find 6364656630313233 "$RT_PID"
		assert_line --regexp "^search results: +$hex: 2\$"
		assert_line --regexp "^ +6364656630313233: 2\$"
	done
}
