#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The commands and the statistics, checked by what they really do:
#   secretmem-run      the variables it sets (--print-env and the real environment of
#                      the command), its errors and exit statuses, that it really
#                      preloads the shim and that a rule given through it really puts
#                      a block into secret memory;
#   secretmem-inspect  on a paused process holding a secret block: its figures
#                      against /proc/PID/smaps, --find against the real contents of
#                      a secret and an ordinary block, and its errors;
#   SECRETMEM_STATS    the report at exit, on stderr and in a file, against what the
#                      program really allocated.

load helpers
load routing-helpers

setup_file() {
	rt_build route_prog header_prog memread secret_holder route_prog_rdynamic
}

setup() {
	sm_setup
	RUN=$abs_top_builddir/tools/secretmem-run
	INSPECT=$abs_top_builddir/tools/secretmem-inspect
	[[ -x $RUN ]] || fail "$RUN is missing: build first (make)"
	[[ -x $INSPECT ]] || fail "$INSPECT is missing: build first (make)"
	PROG=$RT_BIN/route_prog
	HOLDER=$RT_BIN/secret_holder
	# secretmem-run resolves the build tree's library to a canonical path
	SHIM_REAL=$(readlink -f "$SHIM")
	VERSION=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$abs_top_builddir/config.h")
	[[ -n $VERSION ]] || fail "no PACKAGE_VERSION in $abs_top_builddir/config.h"
}

teardown() {
	stop_paused
}

# The SECRETMEM_* variables of the option table (src/options.c), in table order.
table_variables() {
	grep -oE '\{ \{ "SECRETMEM_[A-Z_]+"' "$abs_top_srcdir/src/options.c" | grep -oE 'SECRETMEM_[A-Z_]+'
}

# Random bytes for the holder's blocks; sets SECRET_FILE/PLAIN_FILE and their hex.
make_secrets() {
	SECRET_FILE=$BATS_TEST_TMPDIR/secret.bin
	PLAIN_FILE=$BATS_TEST_TMPDIR/plain.bin
	head -c 32 /dev/urandom >"$SECRET_FILE"
	head -c 32 /dev/urandom >"$PLAIN_FILE"
	SECRET_HEX=$(od -An -tx1 -v "$SECRET_FILE" | tr -d ' \n')
	PLAIN_HEX=$(od -An -tx1 -v "$PLAIN_FILE" | tr -d ' \n')
	((${#SECRET_HEX} == 64 && ${#PLAIN_HEX} == 64)) || fail "cannot make the test secrets"
}

# The holder, paused, with its secret block in secret memory (under the shim) or,
# with "noshim", with no preload at all.
start_holder() {
	make_secrets
	if [[ ${1:-} == noshim ]]; then
		start_paused env -u LD_PRELOAD "$HOLDER" pause "$SECRET_FILE" "$PLAIN_FILE"
		assert_block secret 0
	else
		start_paused SECRETMEM_SITES=load_secret "$HOLDER" pause "$SECRET_FILE" "$PLAIN_FILE"
		assert_block secret 1
		assert_block plain 0
	fi
}

# Sums over the /secretmem mappings of PID in /proc/PID/smaps:
# "MAPPINGS SIZE_KB RSS_KB LOCKED_KB".
smaps_secret_totals() {
	awk '
		/^[0-9a-f]+-[0-9a-f]+ / { s = ($6 ~ /^\/secretmem/); n += s; next }
		s && $1 == "Size:" { size += $2 }
		s && $1 == "Rss:" { rss += $2 }
		s && $1 == "Locked:" { locked += $2 }
		END { printf "%d %d %d %d\n", n, size, rss, locked }
	' "/proc/$1/smaps"
}

# ==== secretmem-run ====

@test "secretmem-run --print-env: every flag sets its variable, exactly" {
	run --separate-stderr -0 "$RUN" --mode uncached --lib 'libcrypto.so*' --site load_key \
		--wrapper xmalloc --depth 3 --fallback exclusive --fork drop --max 64M \
		--stats=/tmp/st.%p.json --log debug --print-env
	assert_equal "$stderr" ""
	assert_output "LD_PRELOAD=$SHIM_REAL
LD_BIND_NOW=1
SECRETMEM_MODE=uncached
SECRETMEM_LIBS=libcrypto.so*
SECRETMEM_SITES=load_key
SECRETMEM_WRAPPERS=xmalloc
SECRETMEM_DEPTH=3
SECRETMEM_FALLBACK=exclusive
SECRETMEM_FORK=drop
SECRETMEM_MAX=64M
SECRETMEM_STATS=/tmp/st.%p.json
SECRETMEM_LOG=debug"
}

@test "secretmem-run --print-env: one flag sets one variable and nothing else" {
	local spec flag value var
	for spec in "--mode off SECRETMEM_MODE=off" "--lib libx.so SECRETMEM_LIBS=libx.so" \
		"--site f SECRETMEM_SITES=f" "--wrapper w SECRETMEM_WRAPPERS=w" \
		"--depth 0 SECRETMEM_DEPTH=0" "--depth 32 SECRETMEM_DEPTH=32" \
		"--fallback mlock SECRETMEM_FALLBACK=mlock" "--fork copy SECRETMEM_FORK=copy" \
		"--max 4096 SECRETMEM_MAX=4096" "--max 1G SECRETMEM_MAX=1G" \
		"--log error SECRETMEM_LOG=error" "--mode=exclusive SECRETMEM_MODE=exclusive"; do
		read -r flag value var <<<"$spec"
		if [[ $flag == *=* ]]; then
			var=$value
			run --separate-stderr -0 "$RUN" "$flag" --print-env
		else
			run --separate-stderr -0 "$RUN" "$flag" "$value" --print-env
		fi
		[[ $output == "LD_PRELOAD=$SHIM_REAL"$'\nLD_BIND_NOW=1\n'"$var" ]] ||
			fail "$spec: --print-env printed: $output"
	done
	run --separate-stderr -0 "$RUN" --stats --print-env
	assert_output "LD_PRELOAD=$SHIM_REAL"$'\nLD_BIND_NOW=1\n'"SECRETMEM_STATS=1"
	run --separate-stderr -0 "$RUN" --print-env
	assert_output "LD_PRELOAD=$SHIM_REAL"$'\nLD_BIND_NOW=1'
}

@test "secretmem-run: the command's real environment holds what --print-env says" {
	local flags=(--mode exclusive --lib 'libnone*.so' --lib '*/libother.so' --site f1
		--site 'lib*.so:f2' --wrapper xmalloc --wrapper g_malloc --depth 2
		--fallback exclusive --fork drop --max 64M --stats="$BATS_TEST_TMPDIR/s.%p" --log error)
	run --separate-stderr -0 "$RUN" "${flags[@]}" --print-env
	local want=$output
	# env runs under the shim with these variables, so they must also be valid
	run --separate-stderr -0 "$RUN" "${flags[@]}" env
	assert_equal "$stderr" ""
	local got
	got=$(grep -E '^(LD_PRELOAD|LD_BIND_NOW|SECRETMEM_[A-Z_]+)=' <<<"$output" | sort)
	assert_equal "$got" "$(sort <<<"$want")"
	assert_line "SECRETMEM_LIBS=libnone*.so:*/libother.so"
	assert_line "SECRETMEM_SITES=f1,lib*.so:f2"
	assert_line "SECRETMEM_WRAPPERS=xmalloc,g_malloc"
}

@test "secretmem-run: --print-env shows every SECRETMEM_* variable the command gets, inherited too" {
	# An inherited SECRETMEM_MODE=off silently disables the rule given by --site;
	# --print-env, meant to show what the command runs with, must not hide it
	# (or secretmem-run must clear what its flags do not set).
	SECRETMEM_MODE=off run --separate-stderr -0 "$RUN" --site load_key --print-env
	local shown=$output
	SECRETMEM_MODE=off run --separate-stderr -0 "$RUN" --site load_key env
	local real
	real=$(grep -E '^(LD_PRELOAD|LD_BIND_NOW|SECRETMEM_[A-Z_]+)=' <<<"$output" | sort)
	[[ $real == "$(sort <<<"$shown")" ]] ||
		fail "--print-env shows: $shown"$'\n'"the command gets: $real"
}

@test "secretmem-run: repeated --lib, --site and --wrapper join with : , and ," {
	run --separate-stderr -0 "$RUN" --lib a.so --lib 'b*' --lib /opt/c.so \
		--site one --site 'libk*.so:two' --site three \
		--wrapper xmalloc --wrapper 'libglib*:g_malloc' --print-env
	assert_line SECRETMEM_LIBS=a.so:b*:/opt/c.so
	assert_line 'SECRETMEM_SITES=one,libk*.so:two,three'
	assert_line 'SECRETMEM_WRAPPERS=xmalloc,libglib*:g_malloc'
	# the library accepts the joined lists (a bad list stops the program with 78)
	# (rules that match nothing are a warning at the default level: tests/sites.bats)
	run --separate-stderr -0 "$RUN" --log error --lib a.so --lib 'b*' --site one --site 'libk*.so:two' \
		--wrapper xmalloc --wrapper 'libglib*:g_malloc' /bin/true
	assert_equal "$stderr" ""
}

@test "secretmem-run: an existing LD_PRELOAD stays, after the shim" {
	sm_need_jemalloc
	LD_PRELOAD=$JEMALLOC run --separate-stderr -0 "$RUN" --print-env
	assert_output "LD_PRELOAD=$SHIM_REAL $JEMALLOC"$'\nLD_BIND_NOW=1'
	LD_PRELOAD=$JEMALLOC run --separate-stderr -0 "$RUN" --log error --site f sh -c \
		'echo "LD_PRELOAD=$LD_PRELOAD"; cat /proc/$$/maps'
	assert_equal "$stderr" ""
	assert_line "LD_PRELOAD=$SHIM_REAL $JEMALLOC"
	# both objects really are in the command's process
	assert_output --partial "$SHIM_REAL"
	assert_output --partial "$(readlink -f "$JEMALLOC")"
}

@test "secretmem-run: the command's exit status passes through" {
	run -7 "$RUN" sh -c 'exit 7'
	run -0 "$RUN" --site f sh -c 'exit 0'
	run -1 "$RUN" false
	run -143 "$RUN" sh -c 'kill -TERM $$'
	# arguments reach the command unchanged, after --
	run -0 "$RUN" --log error --site f -- printf '%s|' --mode 'two words' ''
	assert_output '--mode|two words||'
}

@test "secretmem-run: each bad flag or value: one clear line on stderr, exit 2, nothing run" {
	local marker=$BATS_TEST_TMPDIR/ran spec args want
	# "ARGS|what stderr must contain"
	for spec in \
		'--mode bogus|--mode "bogus" is not valid: expected exclusive, uncached' \
		'--depth 33|--depth "33" is not valid: expected a whole number from 0 to 32' \
		'--depth x|--depth "x" is not valid: expected a whole number from 0 to 32' \
		'--depth -1|--depth "-1" is not valid' \
		'--max 12Q|--max "12Q" is not valid: expected a size in bytes' \
		'--max 64m|--max "64m" is not valid' \
		'--fork x|--fork "x" is not valid: expected copy' \
		'--log x|--log "x" is not valid: expected error, warn' \
		'--fallback x|--fallback "x" is not valid: expected none, exclusive' \
		'--bogus|unknown option --bogus' \
		'-x|unknown option -x' \
		'--lib=|--lib needs a non-empty glob' \
		'--stats=|--stats= needs a file name'; do
		read -r -a args <<<"${spec%%|*}"
		want=${spec#*|}
		rm -f "$marker"
		run --separate-stderr -2 "$RUN" "${args[@]}" touch "$marker"
		[[ $stderr == "secretmem-run: "*"$want"* ]] ||
			fail "${spec%%|*}: stderr does not say '$want': $stderr"
		(($(wc -l <<<"$stderr") == 1)) || fail "${spec%%|*}: more than one line: $stderr"
		assert_equal "$output" ""
		[[ ! -e $marker ]] || fail "${spec%%|*}: the command ran"
	done
}

@test "secretmem-run: an empty --lib, --site or --wrapper is refused with exit 2" {
	local flag
	for flag in --lib --site --wrapper; do
		run --separate-stderr -2 "$RUN" "$flag" '' /bin/true
		[[ $stderr == "secretmem-run: $flag needs "* ]] || fail "$flag '': $stderr"
	done
}

@test "secretmem-run: a flag missing its value: exit 2 naming the flag" {
	local flag
	for flag in --mode --lib --site --wrapper --depth --fallback --fork --max --log; do
		run --separate-stderr -2 "$RUN" "$flag"
		[[ $stderr == "secretmem-run: option $flag needs a value"* ]] ||
			fail "$flag without a value: $stderr"
	done
}

@test "secretmem-run: --max below the library's 4K minimum is refused by secretmem-run itself" {
	# The library refuses SECRETMEM_MAX below 4K (exit 78 from inside the command);
	# secretmem-run must say so itself, with exit 2 like every other bad value.
	run --separate-stderr "$RUN" --max 1 /bin/true
	[[ $status -eq 2 && $stderr == "secretmem-run: --max \"1\" is not valid"* ]] ||
		fail "--max 1: status $status, stderr: $stderr (expected 2 and a secretmem-run message)"
}

@test "secretmem-run: no command: exit 2" {
	run --separate-stderr -2 "$RUN"
	assert_equal "$stderr" "secretmem-run: no command to run (see --help)"
	run --separate-stderr -2 "$RUN" --site f --
	assert_equal "$stderr" "secretmem-run: no command to run (see --help)"
}

@test "secretmem-run: a command that does not exist: exit 127, named on stderr" {
	run --separate-stderr -127 "$RUN" "$BATS_TEST_TMPDIR/no-such-command" arg
	assert_output ""
	[[ $stderr == *"$BATS_TEST_TMPDIR/no-such-command"* ]] || fail "stderr: $stderr"
	run --separate-stderr -127 "$RUN" --site f sm-no-such-command-on-path
	[[ $stderr == *sm-no-such-command-on-path* ]] || fail "stderr: $stderr"
}

@test "secretmem-run --help lists every flag and every SECRETMEM_* variable" {
	run --separate-stderr -0 "$RUN" --help
	assert_equal "$stderr" ""
	local help=$output flag var missing=()
	# the flags the script handles and the flags its man page documents
	local flags
	flags=$({
		grep -oE '^[[:space:]]+--[a-z][a-z-]*' "$abs_top_srcdir/tools/secretmem-run.in"
		grep -oE '^\.It Fl -[a-z][a-z-]*' "$abs_top_srcdir/man/secretmem-run.1" | sed 's/^\.It Fl -/--/'
		grep -oE '^\.Op Fl -[a-z][a-z-]*' "$abs_top_srcdir/man/secretmem-run.1" | sed 's/^\.Op Fl -/--/'
	} | tr -d ' \t' | sort -u)
	[[ $(wc -l <<<"$flags") -ge 13 ]] || fail "found too few flags to check: $flags"
	for flag in $flags; do
		[[ $help =~ (^|[[:space:],])$flag([[:space:]=\[,]|$) ]] || missing+=("$flag")
	done
	for var in $(table_variables); do
		[[ $help == *"$var"* ]] || missing+=("$var")
	done
	((${#missing[@]} == 0)) || fail "--help does not mention: ${missing[*]}"
	run -0 "$RUN" -h
	assert_equal "$output" "$help"
}

@test "secretmem-run --version and secretmem-inspect --version print the package version" {
	run --separate-stderr -0 "$RUN" --version
	assert_output "secretmem-run $VERSION"
	run --separate-stderr -0 "$INSPECT" --version
	assert_output "secretmem-inspect $VERSION"
	grep -q "AC_INIT(\[libsecretmem-preload\], \[$VERSION\]" "$abs_top_srcdir/configure.ac" ||
		fail "config.h's version $VERSION is not configure.ac's"
}

@test "secretmem-run really preloads the shim: secretmem_active() is 1 (0 without it)" {
	run --separate-stderr -0 "$RT_BIN/header_prog"
	assert_line active=0
	run --separate-stderr -0 "$RUN" "$RT_BIN/header_prog"
	assert_line active=1
	assert_line 'in_scope secret=1'
	assert_line 'before secret=0'
	run --separate-stderr -0 "$RUN" --mode off "$RT_BIN/header_prog"
	assert_line active=0
}

@test "secretmem-run --site load_key: the block really lives in secret memory" {
	# the process gets only the LD_PRELOAD secretmem-run sets
	start_paused env -u LD_PRELOAD "$RUN" --site load_key "$PROG" pause load_key plain
	assert_lives_secret load_key
	assert_lives_ordinary plain
	local preload
	preload=$(tr '\0' '\n' <"/proc/$RT_PID/environ" | sed -n 's/^LD_PRELOAD=//p')
	assert_equal "$preload" "$SHIM_REAL"
}

@test "secretmem-run: a bad value it passes on stops the command with the library's message" {
	# what secretmem-run cannot check (a symbol name) the library refuses, exit 78
	run --separate-stderr -78 "$RUN" --site 'not a symbol' /bin/true
	[[ $stderr == "${SM_PREFIX}SECRETMEM_SITES=\"not a symbol\" is not valid:"* ]] ||
		fail "stderr: $stderr"
}

@test "secretmem-run from the build tree finds the build tree's library from any directory" {
	cd "$BATS_TEST_TMPDIR"
	run --separate-stderr -0 "$RUN" --print-env
	assert_output "LD_PRELOAD=$SHIM_REAL"$'\nLD_BIND_NOW=1'
	# through a relative path, and through PATH
	cd "$abs_top_builddir/tests"
	run --separate-stderr -0 ../tools/secretmem-run --print-env
	assert_output "LD_PRELOAD=$SHIM_REAL"$'\nLD_BIND_NOW=1'
	cd /
	PATH=$abs_top_builddir/tools:$PATH run --separate-stderr -0 secretmem-run --print-env
	assert_output "LD_PRELOAD=$SHIM_REAL"$'\nLD_BIND_NOW=1'
	# and it really runs the command with it
	cd "$BATS_TEST_TMPDIR"
	run --separate-stderr -0 "$RUN" "$RT_BIN/header_prog"
	assert_line active=1
}

@test "secretmem-run outside a build tree uses the installed library, or says it is missing" {
	local libdir installed
	libdir=$(sed -n 's/^libdir = //p' "$abs_top_builddir/Makefile")
	local exec_prefix prefix
	prefix=$(sed -n 's/^prefix = //p' "$abs_top_builddir/Makefile")
	exec_prefix=$(sed -n 's/^exec_prefix = //p' "$abs_top_builddir/Makefile")
	exec_prefix=${exec_prefix//'${prefix}'/$prefix}
	libdir=${libdir//'${exec_prefix}'/$exec_prefix}
	installed=$libdir/libsecretmem-preload.so
	mkdir -p "$BATS_TEST_TMPDIR/bin"
	cp "$RUN" "$BATS_TEST_TMPDIR/bin/secretmem-run"
	run --separate-stderr "$BATS_TEST_TMPDIR/bin/secretmem-run" --print-env
	if [[ -f $installed ]]; then
		assert_success
		assert_output "LD_PRELOAD=$installed"
	else
		assert_failure 2
		[[ $stderr == "secretmem-run: cannot find libsecretmem-preload.so"*"$installed"* ]] ||
			fail "stderr: $stderr"
	fi
}

# ==== secretmem-inspect ====

@test "secretmem-inspect: a process under the shim holding secret memory" {
	start_holder
	assert_has_secretmem
	run --separate-stderr -0 "$INSPECT" "$RT_PID"
	assert_equal "$stderr" ""
	assert_line "process:           $RT_PID"
	assert_line "shim loaded:       yes ($SHIM_REAL)"
	local n size rss locked
	read -r n size rss locked < <(smaps_secret_totals "$RT_PID")
	((n >= 1 && size > 0 && rss > 0)) || fail "smaps totals: $n $size $rss $locked"
	assert_line "secret mappings:   $n"
	assert_line "secret mapped:     $size KiB"
	assert_line "secret resident:   $rss KiB"
}

@test "secretmem-inspect --json: valid JSON, the documented fields, values as in smaps" {
	start_holder
	run --separate-stderr -0 "$INSPECT" --json "$RT_PID"
	assert_equal "$stderr" ""
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/inspect.json"
	python3 -m json.tool "$BATS_TEST_TMPDIR/inspect.json" >/dev/null ||
		fail "not valid JSON: $output"
	# the fields the man page documents for --json
	local documented
	documented=$(sed -n '/^\.It Fl -json/,/^\.It /p' "$abs_top_srcdir/man/secretmem-inspect.1" |
		sed -n 's/^\.Dq \([a-z_]*\).*/\1/p' | sort -u | tr '\n' ' ')
	[[ $documented == *secret_mappings* ]] || fail "no fields found in the man page: $documented"
	local n size rss locked
	read -r n size rss locked < <(smaps_secret_totals "$RT_PID")
	run python3 - "$BATS_TEST_TMPDIR/inspect.json" "$RT_PID" "$n" "$size" "$rss" "$locked" \
		"$documented" <<'EOF'
import json, sys
path, pid, n, size, rss, locked, documented = sys.argv[1:]
d = json.load(open(path))
doc = set(documented.split())
# the fields of the "stats" object are documented in the same list
nested = {"mode", "backend", "allocs", "frees", "live_bytes", "peak_bytes",
          "touched_bytes", "mapped_bytes", "chunks", "enomem", "limit"}
doc -= nested
errors = []
if d.get("stats") is not None and set(d["stats"]) != nested:
    errors.append(f"stats fields {sorted(d['stats'])} differ from the man page's {sorted(nested)}")
top = set(d) - {"scan"}
if top - doc:
    errors.append(f"fields not in the man page: {sorted(top - doc)}")
if (doc - {"scan"}) - set(d):
    errors.append(f"documented fields missing: {sorted((doc - {'scan'}) - set(d))}")
want = {"pid": int(pid), "shim_loaded": True, "secret_mappings": int(n),
        "secret_mapped_bytes": int(size) * 1024, "secret_resident_bytes": int(rss) * 1024,
        "secret_locked_bytes": int(locked) * 1024}
for k, v in want.items():
    if d.get(k) != v or type(d.get(k)) is not type(v):
        errors.append(f"{k}: {d.get(k)!r}, /proc/{pid}/smaps says {v!r}")
print("\n".join(errors))
sys.exit(1 if errors else 0)
EOF
	assert_output ""
	assert_success
}

@test "secretmem-inspect: live statistics of a process run with SECRETMEM_STATS" {
	make_secrets
	start_paused SECRETMEM_STATS=1 SECRETMEM_SITES=load_secret "$HOLDER" pause "$SECRET_FILE" "$PLAIN_FILE"
	assert_block secret 1
	run --separate-stderr -0 "$INSPECT" --json "$RT_PID"
	local n size rss locked
	read -r n size rss locked < <(smaps_secret_totals "$RT_PID")
	# one 256-byte secret block, allocated and still live
	run python3 -c '
import json, sys
d = json.loads(sys.argv[1]); size = int(sys.argv[2]) * 1024
s = d.get("stats")
assert isinstance(s, dict), f"no stats: {d}"
errors = []
if (s.get("mode"), s.get("backend")) != ("exclusive", "memfd_secret"): errors.append("mode/backend")
if s.get("allocs") != 1 or s.get("frees") != 0: errors.append("allocs 1, frees 0 expected")
if s.get("live_bytes", 0) < 256: errors.append("live_bytes < 256, but a 256-byte block is live")
if s.get("peak_bytes", 0) < s.get("live_bytes", 0): errors.append("peak_bytes < live_bytes")
if s.get("mapped_bytes") != size: errors.append(f"mapped_bytes != the /secretmem mappings size {size}")
if not 0 < s.get("touched_bytes", 0) <= s.get("mapped_bytes", 0): errors.append("touched_bytes")
if s.get("enomem") != 0: errors.append("enomem")
assert not errors, f"{errors}: {s}"
' "$output" "$size"
	assert_success
	run --separate-stderr -0 "$INSPECT" "$RT_PID"
	assert_line --regexp '^secret allocs: +1 \(frees 0\)$'
	[[ $output =~ secret\ live/peak:\ +([0-9]+)\ /\ ([0-9]+)\ bytes ]] || fail "no live/peak line: $output"
	((BASH_REMATCH[1] >= 256 && BASH_REMATCH[2] >= BASH_REMATCH[1])) ||
		fail "live ${BASH_REMATCH[1]} / peak ${BASH_REMATCH[2]}, but a 256-byte block is live: $output"
}

@test "secretmem-inspect: without SECRETMEM_STATS, no live statistics" {
	start_holder
	run --separate-stderr -0 "$INSPECT" "$RT_PID"
	assert_line --regexp '^live stats: +not exposed'
	run --separate-stderr -0 "$INSPECT" --json "$RT_PID"
	run python3 -c 'import json, sys; d = json.loads(sys.argv[1]); assert d["stats"] is None, d' "$output"
	assert_success
}

@test "secretmem-inspect: a process without the shim: not loaded, no secret mappings" {
	start_holder noshim
	assert_has_secretmem none
	run --separate-stderr -0 "$INSPECT" "$RT_PID"
	assert_line "shim loaded:       no"
	assert_line "secret mappings:   0"
	assert_line "secret mapped:     0 KiB"
	run --separate-stderr -0 "$INSPECT" --json "$RT_PID"
	run python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["shim_loaded"] is False and d["secret_mappings"] == 0, d
assert d["secret_mapped_bytes"] == 0 and d["secret_resident_bytes"] == 0, d
' "$output"
	assert_success
}

@test "secretmem-inspect --find: an ordinary block's bytes are found (exit 3), at its address" {
	start_holder
	local addr
	addr=$(block_addr plain)
	run --separate-stderr -3 "$INSPECT" --find "$PLAIN_HEX" "$RT_PID"
	assert_line "found $PLAIN_HEX at $addr"
	assert_line --regexp "^search results: +$PLAIN_HEX: 1\$"
	# upper-case hex digits mean the same bytes
	run --separate-stderr -3 "$INSPECT" --find "${PLAIN_HEX^^}" "$RT_PID"
}

@test "secretmem-inspect --find: a secret block's bytes are not found (exit 0), its mapping unreadable" {
	start_holder
	run --separate-stderr -0 "$INSPECT" --find "$SECRET_HEX" "$RT_PID"
	refute_line --partial "found "
	assert_line --regexp "^search results: +$SECRET_HEX: 0\$"
	local nsecret
	nsecret=$(grep -c '/secretmem' "/proc/$RT_PID/maps")
	[[ $output =~ scanned:\ +([0-9]+)\ bytes\ in\ ([0-9]+)\ readable\ mappings\ \(([0-9]+)\ unreadable\) ]] ||
		fail "no scan line: $output"
	((BASH_REMATCH[1] > 0 && BASH_REMATCH[2] > 0)) || fail "nothing was scanned: $output"
	((BASH_REMATCH[3] >= nsecret)) ||
		fail "$nsecret /secretmem mappings but only ${BASH_REMATCH[3]} counted unreadable"
	# JSON: both needles, hits per needle, the secret mapping among the unreadable
	run --separate-stderr -3 "$INSPECT" --json --find "$SECRET_HEX" --find "$PLAIN_HEX" "$RT_PID"
	run python3 -c '
import json, sys
d = json.loads(sys.argv[1]); n = int(sys.argv[2])
s = d["scan"]
assert [f["hits"] for f in s["found"]] == [0, 1], s
assert s["unreadable_mappings"] >= n and s["readable_mappings"] > 0 and s["bytes_scanned"] > 0, s
' "$output" "$nsecret"
	assert_success
}

@test "secretmem-inspect --find: the control: without the shim the same secret is found" {
	start_holder noshim
	run --separate-stderr -3 "$INSPECT" --find "$SECRET_HEX" "$RT_PID"
	assert_line "found $SECRET_HEX at $(block_addr secret)"
}

@test "secretmem-inspect --find-file: the contents of a file, as --find" {
	start_holder
	run --separate-stderr -0 "$INSPECT" --find-file "$SECRET_FILE" "$RT_PID"
	assert_line --regexp "^search results: +$SECRET_FILE: 0\$"
	run --separate-stderr -3 "$INSPECT" --find-file "$PLAIN_FILE" "$RT_PID"
	assert_line "found $PLAIN_FILE at $(block_addr plain)"
	run --separate-stderr -2 "$INSPECT" --find-file "$BATS_TEST_TMPDIR/missing" "$RT_PID"
	[[ $stderr == "secretmem-inspect: "*"$BATS_TEST_TMPDIR/missing"*"No such file"* ]] ||
		fail "stderr: $stderr"
}

@test "secretmem-inspect --find-file: an empty file is refused with a message that says so" {
	: >"$BATS_TEST_TMPDIR/empty"
	run --separate-stderr -2 "$INSPECT" --find-file "$BATS_TEST_TMPDIR/empty" "$$"
	[[ $stderr == "secretmem-inspect: "*"$BATS_TEST_TMPDIR/empty"* && $stderr == *empty* ]] ||
		fail "stderr: $stderr"
	[[ $stderr != *Success* ]] || fail "the message gives errno 0 as the reason: $stderr"
}

@test "secretmem-inspect --find: bad hex is bad usage (exit 2)" {
	local hex
	for hex in abc zz 0g '' 'de ad'; do
		run --separate-stderr -2 "$INSPECT" --find "$hex" "$$"
		[[ $stderr == "secretmem-inspect: --find needs "*"\"$hex\""* ]] || fail "--find '$hex': $stderr"
		assert_output ""
	done
}

@test "secretmem-inspect: a process that does not exist: exit 1, \"no process\"" {
	sh -c 'exit 0' &
	local pid=$!
	wait "$pid"
	[[ ! -e /proc/$pid ]] || skip "pid $pid reused already"
	run --separate-stderr -1 "$INSPECT" "$pid"
	assert_equal "$stderr" "secretmem-inspect: no process $pid"
	assert_output ""
}

@test "secretmem-inspect: a PID that is not a number, or no PID: exit 2" {
	local arg
	for arg in abc 12x 0 '' 99999999999 4194305x; do
		run --separate-stderr -2 "$INSPECT" "$arg"
		[[ $stderr == "secretmem-inspect: \"$arg\" is not a process ID" ]] || fail "'$arg': $stderr"
	done
	run --separate-stderr -2 "$INSPECT"
	[[ $stderr == usage:* ]] || fail "no PID: $stderr"
	run --separate-stderr -2 "$INSPECT" 1 2
	run --separate-stderr -2 "$INSPECT" --bogus 1
}

@test "secretmem-inspect as nobody on a root process: exit 1, a permission message" {
	start_holder
	local as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	"${as_nobody[@]}" true || skip "setpriv cannot switch to nobody here"
	run --separate-stderr -1 "${as_nobody[@]}" "$INSPECT" "$RT_PID"
	[[ $stderr == "secretmem-inspect: cannot read /proc/$RT_PID/smaps: Permission denied"* ]] ||
		fail "stderr: $stderr"
	[[ $stderr == *"root"* ]] || fail "the message does not say who may: $stderr"
	assert_output ""
	run --separate-stderr -1 "${as_nobody[@]}" "$INSPECT" --find "$PLAIN_HEX" "$RT_PID"
	[[ $stderr == *"Permission denied"* ]] || fail "--find: $stderr"
}

@test "secretmem-inspect as the process's own unprivileged user: it reads it, --find too" {
	local as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	"${as_nobody[@]}" true || skip "setpriv cannot switch to nobody here"
	# everything nobody runs or reads, in a directory nobody can reach
	local dir
	dir=$(mktemp -d /tmp/secretmem-tools.XXXXXX)
	chmod 755 "$dir"
	make_secrets
	cp "$SHIM" "$HOLDER" "$INSPECT" "$SECRET_FILE" "$PLAIN_FILE" "$dir/"
	chmod a+r "$dir"/*
	local shim=$SHIM
	SHIM=$dir/libsecretmem-preload.so
	start_paused_under "${as_nobody[@]}" prlimit --memlock=1048576:1048576 -- \
		SECRETMEM_SITES=load_secret "$dir/$(basename "$HOLDER")" pause "$dir/secret.bin" "$dir/plain.bin"
	SHIM=$shim
	assert_block secret 1
	run -0 "${as_nobody[@]}" "$dir/secretmem-inspect" "$RT_PID"
	assert_line "shim loaded:       yes ($dir/libsecretmem-preload.so)"
	assert_line --regexp '^secret mappings:   [1-9][0-9]*$'
	run -3 "${as_nobody[@]}" "$dir/secretmem-inspect" --find "$PLAIN_HEX" "$RT_PID"
	run -0 "${as_nobody[@]}" "$dir/secretmem-inspect" --find "$SECRET_HEX" "$RT_PID"
	stop_paused
	rm -rf "$dir"
}

# ==== SECRETMEM_STATS ====

# The value of "NAME N" in the text report in $stderr (first number after the words).
report_number() {
	sed -n "s/.*$1 \([0-9][0-9]*\).*/\1/p" <<<"$stderr" | head -n 1
}

@test "SECRETMEM_STATS=1: the report on stderr at exit, with the real counts" {
	make_secrets
	run --separate-stderr -0 with_shim SECRETMEM_STATS=1 SECRETMEM_SITES=load_secret \
		"$HOLDER" "$SECRET_FILE" "$PLAIN_FILE"
	[[ $output == *"secret secret=1"* ]] || fail "the block was not secret: $output"
	local report=$stderr
	[[ $report =~ ^libsecretmem-preload:\ statistics\ of\ process\ [0-9]+$'\n' ]] ||
		fail "no report header: $report"
	[[ $report == *"  mode exclusive, backend memfd_secret"* ]] || fail "mode/backend: $report"
	[[ $report == *"  secret allocations 1, frees 0"* ]] || fail "allocations: $report"
	local live peak touched mapped chunks
	live=$(report_number live)
	peak=$(report_number peak)
	touched=$(report_number 'pages touched')
	mapped=$(report_number mapped)
	chunks=$(sed -n 's/.* in \([0-9]*\) chunks.*/\1/p' <<<"$report")
	((live >= 256 && peak >= live)) || fail "live $live / peak $peak (one 256-byte block is live): $report"
	((touched >= 4096 && mapped >= touched && chunks >= 1)) ||
		fail "touched $touched, mapped $mapped, chunks $chunks: $report"
	[[ $report == *"  allocations refused for lack of secret memory (ENOMEM): 0"* ]] ||
		fail "ENOMEM count: $report"
	[[ $report == *"top call sites by secret bytes:"* ]] || fail "no call sites: $report"
	[[ $report =~ $'\n'\ +256\ bytes\ +1\ allocs\ \ [^$'\n']*"($HOLDER)" ]] ||
		fail "no site line for the 256-byte allocation in $HOLDER: $report"
	# the report is all the library said
	[[ $(grep -vc '^  ' <<<"$report") -eq 1 ]] || fail "other messages: $report"
}

@test "SECRETMEM_STATS=1: the top call site names the tagged function of an unstripped program" {
	make_secrets
	run --separate-stderr -0 with_shim SECRETMEM_STATS=1 SECRETMEM_SITES=load_secret \
		"$HOLDER" "$SECRET_FILE" "$PLAIN_FILE"
	[[ $stderr =~ $'\n'\ +256\ bytes\ +1\ allocs\ \ load_secret\+0x[0-9a-f]+\ \( ]] ||
		fail "load_secret (global, in .symtab, not exported) is not named: $stderr"
	run --separate-stderr -0 with_shim SECRETMEM_STATS=1 SECRETMEM_SITES=load_key,static_secret \
		"$PROG" load_key static_secret plain
	[[ $stderr == *" load_key+0x"* ]] || fail "load_key is not named: $stderr"
	[[ $stderr == *" static_secret+0x"* ]] || fail "static_secret (static) is not named: $stderr"
}

@test "SECRETMEM_STATS=1: an exported tagged function is named (dladdr)" {
	run --separate-stderr -0 with_shim SECRETMEM_STATS=1 SECRETMEM_SITES=load_key \
		"$RT_BIN/route_prog_rdynamic" load_key plain
	assert_line --regexp '^load_key secret=1 '
	[[ $stderr =~ $'\n'\ +[0-9]+\ bytes\ +1\ allocs\ \ load_key\+0x[0-9a-f]+\ \((.*/)?route_prog_rdynamic\) ]] ||
		fail "load_key is not named: $stderr"
}

@test "SECRETMEM_STATS: the peak counts blocks that were live together" {
	# load_key and static_secret each hold a 64-byte secret block until exit
	run --separate-stderr -0 with_shim SECRETMEM_STATS=1 SECRETMEM_SITES=load_key,static_secret \
		"$PROG" load_key static_secret plain
	assert_line --regexp '^load_key secret=1 '
	assert_line --regexp '^static_secret secret=1 '
	[[ $stderr == *"secret allocations 2, frees 2"* ]] || fail "counts: $stderr"
	local peak
	peak=$(report_number peak)
	((peak >= 128)) || fail "peak $peak bytes, but two 64-byte secret blocks were live together: $stderr"
}

@test "SECRETMEM_STATS=FILE.json: JSON into a file named with the pid, consistent counts" {
	make_secrets
	local dir=$BATS_TEST_TMPDIR/stats
	mkdir "$dir"
	# sh's pid is the program's after exec
	run --separate-stderr -0 sh -c 'echo "$$"; exec "$@"' sh env LD_PRELOAD="$SHIM" \
		SECRETMEM_STATS="$dir/st.%p.json" SECRETMEM_SITES=load_secret \
		"$HOLDER" "$SECRET_FILE" "$PLAIN_FILE"
	assert_equal "$stderr" ""
	local pid=${lines[0]}
	run ls "$dir"
	assert_output "st.$pid.json"
	python3 -m json.tool "$dir/st.$pid.json" >/dev/null || fail "not JSON: $(cat "$dir/st.$pid.json")"
	run python3 - "$dir/st.$pid.json" "$pid" "$HOLDER" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); pid = int(sys.argv[2]); prog = sys.argv[3]
errors = []
def check(cond, what):
    if not cond:
        errors.append(what)
check(d.get("pid") == pid, f"pid {d.get('pid')} != {pid}")
check(d.get("mode") == "exclusive", f"mode {d.get('mode')}")
check(d.get("backend") == "memfd_secret", f"backend {d.get('backend')}")
check(d.get("allocs") == 1, f"allocs {d.get('allocs')} (one secret allocation)")
check(d.get("frees", 99) <= d.get("allocs", 0), "frees > allocs")
check(d.get("live_bytes", 0) >= 256, f"live_bytes {d.get('live_bytes')} (a 256-byte block is live)")
check(d.get("peak_bytes", 0) >= d.get("live_bytes", 1), "peak_bytes < live_bytes")
check(0 < d.get("touched_bytes", 0) <= d.get("mapped_bytes", 0), "touched/mapped")
check(d.get("chunks", 0) >= 1 and d.get("enomem") == 0, "chunks/enomem")
sites = d.get("sites", [])
check(any(s.get("bytes") == 256 and s.get("allocs") == 1 and s.get("object") == prog for s in sites),
      f"no site of 256 bytes in {prog}: {sites}")
print("\n".join(errors))
sys.exit(1 if errors else 0)
EOF
	assert_output ""
	assert_success
}

@test "SECRETMEM_STATS=FILE (not .json): the text report in the file, nothing on stderr" {
	make_secrets
	local dir=$BATS_TEST_TMPDIR/stats
	mkdir "$dir"
	run --separate-stderr -0 sh -c 'echo "$$"; exec "$@"' sh env LD_PRELOAD="$SHIM" \
		SECRETMEM_STATS="$dir/report-%p.txt" SECRETMEM_SITES=load_secret \
		"$HOLDER" "$SECRET_FILE" "$PLAIN_FILE"
	assert_equal "$stderr" ""
	local pid=${lines[0]}
	[[ -f $dir/report-$pid.txt ]] || fail "no $dir/report-$pid.txt: $(ls "$dir")"
	run head -n 1 "$dir/report-$pid.txt"
	assert_output "libsecretmem-preload: statistics of process $pid"
	grep -q '^  secret allocations 1, frees 0$' "$dir/report-$pid.txt" ||
		fail "$(cat "$dir/report-$pid.txt")"
	! python3 -m json.tool "$dir/report-$pid.txt" >/dev/null 2>&1 || fail "the .txt report is JSON"
}

@test "SECRETMEM_STATS to an unwritable path: one warning, the program still exits 0" {
	local path=$BATS_TEST_TMPDIR/no-such-dir/st.json
	run --separate-stderr -0 with_shim SECRETMEM_STATS="$path" SECRETMEM_SITES=load_key \
		"$PROG" load_key plain
	assert_line --regexp '^load_key secret=1 '
	[[ $stderr == "${SM_PREFIX}SECRETMEM_STATS: cannot write $path"* ]] || fail "stderr: $stderr"
	(($(wc -l <<<"$stderr") == 1)) || fail "more than one line: $stderr"
	[[ ! -e $path ]]
}

@test "SECRETMEM_STATS=0 or unset: no report" {
	run --separate-stderr -0 with_shim SECRETMEM_STATS=0 SECRETMEM_SITES=load_key "$PROG" load_key
	assert_equal "$stderr" ""
	run --separate-stderr -0 with_shim SECRETMEM_SITES=load_key "$PROG" load_key
	assert_equal "$stderr" ""
	# and the control: with 1 the same run reports
	run --separate-stderr -0 with_shim SECRETMEM_STATS=1 SECRETMEM_SITES=load_key "$PROG" load_key
	[[ $stderr == "${SM_PREFIX}statistics of process "* ]] || fail "stderr: $stderr"
}

@test "secretmem-run --stats: the report through the wrapper" {
	run --separate-stderr -0 "$RUN" --stats --site load_key "$PROG" load_key plain
	assert_line --regexp '^load_key secret=1 '
	[[ $stderr == "${SM_PREFIX}statistics of process "* ]] || fail "stderr: $stderr"
	[[ $stderr == *"secret allocations 1, frees 1"* ]] || fail "stderr: $stderr"
}
