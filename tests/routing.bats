#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Routing: every kind of rule (SECRETMEM_LIBS, SECRETMEM_SITES with and without a
# LIBGLOB, SECRETMEM_WRAPPERS, SECRETMEM_DEPTH, annotations, scopes) sends exactly
# the allocations it names into secret memory. Each case checks where the block
# really lives: secretmem_is_secret() inside the program and, from another process,
# its /proc/PID/maps line (/secretmem) and that /proc/PID/mem and process_vm_readv
# cannot read it, while an untagged block of the same run reads back in full.

load helpers
load routing-helpers

setup_file() {
	rt_build libs route_prog route_prog_linked annotated_prog header_prog header_prog_nopic cxx_route cxx_replace cxx_replace_linked cxx_plugin memread
}

setup() {
	sm_setup
	PROG=$RT_BIN/route_prog
	LINKED=$RT_BIN/route_prog_linked
}

teardown() {
	stop_paused
}

# ---- SECRETMEM_LIBS ----

@test "SECRETMEM_LIBS: a library loaded at start-up allocates secret memory" {
	start_paused SECRETMEM_LIBS=libroutetest.so "$LINKED" pause lib_linked plain
	assert_lives_secret lib_linked
	assert_lives_ordinary plain
	assert_has_secretmem
}

@test "SECRETMEM_LIBS: a full-path glob matches too, a non-matching glob does not" {
	run -0 with_shim SECRETMEM_LIBS="$RT_BIN/libroute*.so" "$LINKED" lib_linked plain
	assert_block lib_linked 1
	assert_block plain 0
	run -0 with_shim SECRETMEM_LIBS='libother*.so:/nowhere/*' "$LINKED" lib_linked plain
	assert_block lib_linked 0
	assert_block plain 0
}

@test "SECRETMEM_LIBS: a library loaded with dlopen after start-up allocates secret memory" {
	start_paused SECRETMEM_LIBS=libroutetest.so "$PROG" pause lib "$RT_BIN/libroutetest.so" plain
	assert_lives_secret lib
	assert_lives_ordinary plain
}

@test "SECRETMEM_LIBS: dlclose, an untagged library at the same address, reload: nothing stale" {
	start_paused SECRETMEM_LIBS=libroutetest.so "$PROG" pause \
		reload "$RT_BIN/libroutetest.so" "$RT_BIN/libplain.so"
	# libplain.so is the same code under another name: loaded where libroutetest.so
	# was, its malloc call has the very return address that was cached as secret
	first=$(awk '$1 == "lib_first_base" { print $2 }' <<<"$output")
	plain=$(awk '$1 == "plain_lib_base" { print $2 }' <<<"$output")
	[[ -n $first && $first == "$plain" ]] ||
		fail "libplain.so was not loaded where libroutetest.so was ($first vs $plain): the test shows nothing"
	assert_lives_secret lib_first
	assert_lives_ordinary plain_lib
	assert_lives_secret lib_again
}

# ---- SECRETMEM_SITES ----

@test "SECRETMEM_SITES: a global function of the main program" {
	start_paused SECRETMEM_SITES=load_key "$PROG" pause load_key static_secret plain
	assert_lives_secret load_key
	assert_lives_ordinary static_secret
	assert_lives_ordinary plain
}

@test "SECRETMEM_SITES: a static function of the main program (.symtab only)" {
	# the premise: the function is not in .dynsym, only in .symtab
	run -0 nm "$PROG"
	assert_line --regexp ' t static_secret$'
	start_paused SECRETMEM_SITES=static_secret "$PROG" pause static_secret load_key plain
	assert_lives_secret static_secret
	assert_lives_ordinary load_key
	assert_lives_ordinary plain
}

@test "SECRETMEM_LIBS: the main program started by a symbolic link matches by the link's name too (Debian's /usr/bin/stunnel to stunnel4); started by its own name, the link's pattern matches nothing, and says so" {
	local dir=$BATS_TEST_TMPDIR/bin
	mkdir -p "$dir"
	ln -s "$PROG" "$dir/route_link"
	start_paused SECRETMEM_LIBS=route_link "$dir/route_link" pause load_key
	assert_lives_secret load_key
	stop_paused
	run -0 with_shim PATH="$dir:$PATH" SECRETMEM_LIBS='route_l?nk' route_link load_key # found on PATH
	assert_block load_key 1
	# control: by its own name, nothing is named route_link
	run -0 --separate-stderr with_shim SECRETMEM_LIBS=route_link "$PROG" load_key
	assert_block load_key 0
	[[ $stderr == *"SECRETMEM_LIBS pattern route_link matches no object loaded now"* ]] ||
		fail "no warning: $stderr"
	run -0 with_shim SECRETMEM_SITES=route_link:load_key "$dir/route_link" load_key plain
	assert_block load_key 1
	assert_block plain 0
}

@test "SECRETMEM_SITES: LIB:FUNCTION matches only in the objects LIB names" {
	# the main program matches by its file name or by its path
	run -0 with_shim SECRETMEM_SITES="route_prog:load_key,*/bin/route_prog:static_secret" \
		"$PROG" load_key static_secret plain
	assert_block load_key 1
	assert_block static_secret 1
	assert_block plain 0
	run -0 with_shim SECRETMEM_SITES="libnomatch*:load_key,route_prog_linked:static_secret" \
		"$PROG" load_key static_secret
	assert_block load_key 0
	assert_block static_secret 0
}

@test "SECRETMEM_SITES: LIB:FUNCTION in a library loaded with dlopen" {
	start_paused SECRETMEM_SITES='libroute*.so:routetest_alloc' "$PROG" pause \
		lib "$RT_BIN/libroutetest.so" plain
	assert_lives_secret lib
	assert_lives_ordinary plain
	stop_paused
	run -0 with_shim SECRETMEM_SITES='libother*.so:routetest_alloc' "$PROG" lib "$RT_BIN/libroutetest.so"
	assert_block lib 0
}

@test "SECRETMEM_SITES: LIB:FUNCTION across dlclose and reload" {
	run -0 with_shim SECRETMEM_SITES='libroutetest.so:routetest_alloc' "$PROG" \
		reload "$RT_BIN/libroutetest.so" "$RT_BIN/libplain.so"
	assert_block lib_first 1
	assert_block plain_lib 0
	assert_block lib_again 1
}

@test "strdup, getline, asprintf and open_memstream count as allocated by their caller" {
	start_paused SECRETMEM_SITES=dup_key,read_line,asprintf_key,memstream_key "$PROG" pause \
		dup_key read_line asprintf_key memstream_key plain
	assert_lives_secret dup_key
	assert_lives_secret read_line
	assert_lives_secret asprintf_key
	assert_lives_secret memstream_key
	assert_lives_ordinary plain
}

@test "strndup counts as allocated by its caller" {
	start_paused SECRETMEM_SITES=ndup_key "$PROG" pause ndup_key plain
	assert_lives_secret ndup_key
	assert_lives_ordinary plain
}

@test "strdup from program code is decided from the cache, without a stack walk" {
	# the shim defines strdup, so libc is not between the call site and the shim;
	# before, each of these 1000 strdups walked the stack
	run -0 with_shim SECRETMEM_SITES=load_key SECRETMEM_STATS=1 "$PROG" dup_loop
	[[ $output =~ routed\ ([0-9]+),\ of\ which\ needed\ a\ stack\ walk:\ ([0-9]+) ]] ||
		fail "no statistics: $output"
	((BASH_REMATCH[1] >= 1000)) || fail "only ${BASH_REMATCH[1]} allocations routed"
	((BASH_REMATCH[2] < 20)) || fail "${BASH_REMATCH[2]} stack walks for 1000 strdups"
}

@test "strdup, getline, asprintf and open_memstream in untagged functions stay ordinary" {
	start_paused SECRETMEM_SITES=load_key "$PROG" pause dup_key read_line asprintf_key memstream_key
	assert_lives_ordinary dup_key
	assert_lives_ordinary read_line
	assert_lives_ordinary asprintf_key
	assert_lives_ordinary memstream_key
}

mangled_name() {
	run -0 nm "$RT_BIN/cxx_route"
	mangled=$(awk '$2 == "T" && $3 ~ /^_Z[0-9]+make_secret_key/ { print $3 }' <<<"$output")
	[[ -n $mangled ]] || fail "no mangled make_secret_key in cxx_route"
}

@test "C++: new and std::string in a tagged function with a mangled name" {
	mangled_name
	start_paused SECRETMEM_SITES="$mangled" "$RT_BIN/cxx_route" mangled pause
	assert_lives_secret new
	assert_lives_secret string
}

@test "C++: std::vector in a tagged function (allocating in an out-of-line template instance)" {
	# vector::assign allocates in std::vector<>::_M_fill_assign, a template instance
	# compiled into the program, so the frame above operator new is not the tagged
	# function; the user wrote the vector in make_secret_key and expects it secret
	mangled_name
	start_paused SECRETMEM_SITES="$mangled" "$RT_BIN/cxx_route" mangled pause
	assert_lives_secret vector
}

@test "C++: std::vector in a tagged function is secret with SECRETMEM_DEPTH=1" {
	run -0 with_shim SECRETMEM_SITES=make_secret_key_c SECRETMEM_DEPTH=1 "$RT_BIN/cxx_route" c
	assert_block new 1
	assert_block string 1
	assert_block vector 1
}

@test "C++: an extern \"C\" tagged function; an untagged one stays ordinary" {
	start_paused SECRETMEM_SITES=make_secret_key_c "$RT_BIN/cxx_route" c pause
	assert_lives_secret new
	assert_lives_secret string
	stop_paused
	start_paused SECRETMEM_SITES=make_secret_key_c "$RT_BIN/cxx_route" plain pause
	assert_lives_ordinary new blk:new
	assert_lives_ordinary string blk:string
	assert_lives_ordinary vector ZZZZ
}

@test "C++: every form of operator new in a tagged function is secret and aligned" {
	run -0 --separate-stderr with_shim SECRETMEM_SITES=make_forms_c "$RT_BIN/cxx_route" forms
	for form in "new[]" new "new[]-nothrow" new-nothrow new-aligned "new[]-aligned" \
		new-aligned-nothrow "new[]-aligned-nothrow"; do
		assert_line "$form secret=1 aligned=1"
	done
	run -0 --separate-stderr with_shim "$RT_BIN/cxx_route" forms
	assert_line "new-aligned secret=0 aligned=1"
	refute_line --partial "secret=1"
}

@test "C++: a new that secret memory cannot serve throws bad_alloc, never ordinary memory" {
	run -0 --separate-stderr with_shim SECRETMEM_SITES=make_huge_c SECRETMEM_MAX=1M \
		"$RT_BIN/cxx_route" oom 4194304
	assert_line "new[] threw bad_alloc"
	assert_line "nothrow new[] returned nullptr"
	assert_line "aligned new[] threw bad_alloc after 2 new_handler calls"
	assert_line "small new secret=1"
	[[ $stderr == *"out of secret memory"* ]] || fail "no warning: $stderr"
	# the same program without the limit gets its memory (the test can fail)
	run -0 --separate-stderr with_shim SECRETMEM_SITES=make_huge_c "$RT_BIN/cxx_route" oom 4194304
	assert_line "new[] succeeded secret=1"
}

@test "C++: a program that replaces operator new and delete gets every form through them" {
	local ok="replacement new 9 delete 9 live 0"
	run -0 with_shim "$RT_BIN/cxx_replace"
	assert_output "$ok secret 0 ordinary-secret 0"
	# its operator new calls malloc from program code: a rule on it applies
	run -0 with_shim SECRETMEM_SITES=_Znwm "$RT_BIN/cxx_replace"
	assert_output "$ok secret 9 ordinary-secret 0"
	# and without the shim, the same (the test can fail)
	run -0 "$RT_BIN/cxx_replace"
	assert_output "$ok secret 0 ordinary-secret 0"
}

@test "C++: operators replaced in a library the program links are the ones used" {
	local ok="replacement new 9 delete 9 live 0"
	run -0 "$RT_BIN/cxx_replace_linked"
	assert_output "$ok secret 0 ordinary-secret 0"
	run -0 with_shim "$RT_BIN/cxx_replace_linked"
	assert_output "$ok secret 0 ordinary-secret 0"
	run -0 with_shim SECRETMEM_SITES=_Znwm "$RT_BIN/cxx_replace_linked"
	assert_output "$ok secret 9 ordinary-secret 0"
	# with jemalloc preloaded its operators come before the library's, with the
	# shim or without it: the same output either way
	sm_need_jemalloc
	run -0 env LD_PRELOAD="$JEMALLOC" "$RT_BIN/cxx_replace_linked"
	local alone=$output
	run -0 env LD_PRELOAD="$SHIM:$JEMALLOC" "$RT_BIN/cxx_replace_linked"
	assert_output "$alone"
}

@test "C++: a plugin loaded with RTLD_LOCAL by a C program catches its bad_alloc" {
	# the plugin's libstdc++ is not in the global scope: the shim finds it from the
	# plugin to run the new_handler and throw
	local rule secret
	for rule in SECRETMEM_LOG=warn SECRETMEM_LIBS=libcxxplugin.so; do
		secret=0
		[[ $rule == SECRETMEM_LIBS=* ]] && secret=1
		run -0 with_shim "$rule" "$RT_BIN/cxx_host" "$RT_BIN/libcxxplugin.so"
		assert_line "plugin: new[] threw bad_alloc"
		assert_line "plugin: nothrow new[] returned nullptr"
		assert_line "plugin: small new secret=$secret"
	done
}

# ---- SECRETMEM_WRAPPERS ----

@test "SECRETMEM_WRAPPERS: without it the call site is the wrapper, so not secret" {
	start_paused SECRETMEM_SITES=wrapped_key "$PROG" pause wrapped_key load_key
	assert_lives_ordinary wrapped_key
	assert_lives_ordinary load_key
}

@test "SECRETMEM_WRAPPERS=xmalloc: the wrapper's caller is the call site" {
	start_paused SECRETMEM_SITES=wrapped_key SECRETMEM_WRAPPERS=xmalloc "$PROG" pause wrapped_key plain
	assert_lives_secret wrapped_key
	assert_lives_ordinary plain
}

# ---- SECRETMEM_DEPTH ----

@test "SECRETMEM_DEPTH=0: a rule on outer does not cover inner's allocation" {
	start_paused SECRETMEM_SITES=outer "$PROG" pause depth plain
	assert_lives_ordinary inner
	assert_lives_ordinary plain
}

@test "SECRETMEM_DEPTH=1: a rule on outer covers inner's allocation, not others" {
	start_paused SECRETMEM_SITES=outer SECRETMEM_DEPTH=1 "$PROG" pause depth plain dup_key
	assert_lives_secret inner
	assert_lives_ordinary plain
	assert_lives_ordinary dup_key
}

# ---- scopes ----

@test "scopes: nested begin/end, secret from the first begin to the last end" {
	start_paused "$PROG" pause scope
	assert_lives_ordinary before_scope
	assert_lives_secret scope_outer
	assert_lives_secret scope_inner
	assert_lives_secret scope_inner_strdup
	assert_lives_secret scope_after_inner_end
	assert_lives_ordinary after_scope
}

@test "scopes: per thread, and a scope's block freed by another thread" {
	start_paused "$PROG" pause threads
	assert_lives_secret thread_scope
	assert_lives_ordinary other_thread
	assert_lives_ordinary other_thread_after
	assert_lives_ordinary main_thread
	assert_line "cross_free secret_before=1 intact=1 ok"
	stop_paused
	# and the whole program, freeing everything, ends normally
	run -0 --separate-stderr with_shim "$PROG" threads scope
	assert_equal "$stderr" ""
}

# ---- annotations ----

@test "SECRETMEM_ANNOTATE_LIBRARY puts the note in the library and the program" {
	for obj in "$RT_BIN/libannotated.so" "$RT_BIN/annotated_prog"; do
		run -0 readelf -W -n "$obj"
		assert_output --partial '.note.secretmem'
		assert_line --regexp '^ *secretmem +0x00000004.*0x0000534d'
	done
	# and only there
	run -0 readelf -W -n "$RT_BIN/libroutetest.so"
	refute_output --partial secretmem
}

@test "an annotated library linked at build time: secret with no rule set" {
	start_paused "$LINKED" pause annotated_linked lib_linked plain
	assert_lives_secret annotated_linked
	assert_lives_ordinary lib_linked
	assert_lives_ordinary plain
}

@test "an annotated library loaded with dlopen, no rule set: secret" {
	start_paused "$PROG" pause lib "$RT_BIN/libannotated.so" plain
	assert_lives_secret lib
	assert_lives_ordinary plain
}

@test "an annotated library loaded with dlopen while other rules are set: secret" {
	start_paused SECRETMEM_SITES=load_key "$PROG" pause lib "$RT_BIN/libannotated.so" plain
	assert_lives_secret lib
	assert_lives_ordinary plain
}

@test "an annotated program: its allocations are secret under the shim" {
	run -0 with_shim "$RT_BIN/annotated_prog"
	assert_line active=1
	assert_block annotated_malloc 1
	assert_block annotated_strdup 1
	assert_block annotated_calloc 1
}

@test "an annotated program runs unchanged without the shim" {
	run -0 --separate-stderr "$RT_BIN/annotated_prog"
	assert_line active=0
	assert_block annotated_malloc 0
	assert_block annotated_strdup 0
	assert_block annotated_calloc 0
	assert_equal "$stderr" ""
}

# ---- secretmem.h without and with the shim ----

@test "secretmem.h: a program using every function runs unchanged without the shim" {
	run -0 --separate-stderr "$RT_BIN/header_prog"
	assert_equal "$stderr" ""
	assert_output "active=0
before secret=0
in_scope secret=0
nested secret=0
after secret=0
null secret=0
stack secret=0"
}

@test "secretmem.h: the same program under the shim, no rule set: the scope is secret" {
	run -0 --separate-stderr with_shim "$RT_BIN/header_prog"
	assert_equal "$stderr" ""
	assert_output "active=1
before secret=0
in_scope secret=1
nested secret=1
after secret=0
null secret=0
stack secret=0"
}

@test "secretmem.h: built -no-pie -fno-pic (weak references settled to 0), with and without the shim" {
	# the proof: no dynamic reference to the shim's entry points is left
	run -0 sh -c 'nm -D "$1" | grep -c secretmem_impl_ || true' sh "$RT_BIN/header_prog_nopic"
	assert_output 0
	run -0 --separate-stderr with_shim "$RT_BIN/header_prog_nopic"
	assert_equal "$stderr" ""
	assert_line "active=1"
	assert_line "in_scope secret=1"
	assert_line "after secret=0"
	run -0 --separate-stderr "$RT_BIN/header_prog_nopic"
	assert_line "active=0"
	assert_line "in_scope secret=0"
}

# ---- SECRETMEM_MODE=off ----

@test "SECRETMEM_MODE=off: no rule, annotation or scope makes anything secret" {
	start_paused SECRETMEM_MODE=off SECRETMEM_LIBS='*' \
		SECRETMEM_SITES=load_key,static_secret,dup_key,read_line,outer \
		SECRETMEM_WRAPPERS=xmalloc SECRETMEM_DEPTH=1 \
		"$LINKED" pause load_key static_secret dup_key read_line depth scope annotated_linked lib_linked plain
	assert_line active=0
	refute_output --regexp 'secret=1'
	assert_lives_ordinary load_key
	assert_lives_ordinary scope_inner
	assert_lives_ordinary annotated_linked
	assert_has_secretmem none
}

@test "SECRETMEM_MODE=off: the header program behaves as without the shim, silently" {
	run -0 --separate-stderr with_shim SECRETMEM_MODE=off "$RT_BIN/header_prog"
	assert_line active=0
	assert_line "in_scope secret=0"
	assert_line "nested secret=0"
	assert_equal "$stderr" ""
}

# ---- realloc across the boundary ----

@test "realloc from a tagged site moves an ordinary block into secret memory" {
	start_paused SECRETMEM_SITES=realloc_key,load_key "$PROG" pause realloc
	assert_block realloc_in_before 0
	assert_lives_secret realloc_in
	refute_line "realloc_in content lost"
}

@test "realloc from an untagged site keeps a secret block secret" {
	start_paused SECRETMEM_SITES=realloc_key,load_key "$PROG" pause realloc
	assert_block realloc_keep_before 1
	assert_lives_secret realloc_keep
	refute_line "realloc_keep content lost"
}

# ---- diagnostics ----

@test "SECRETMEM_LOG=debug names the objects and symbols each rule matched" {
	run -0 --separate-stderr with_shim SECRETMEM_LOG=debug SECRETMEM_LIBS=libroutetest.so \
		SECRETMEM_SITES=load_key,static_secret SECRETMEM_WRAPPERS=xmalloc \
		"$LINKED" load_key lib_linked
	assert_block load_key 1
	assert_block lib_linked 1
	output=$stderr
	mapfile -t lines <<<"$stderr"
	assert_line --regexp "^${SM_PREFIX}SECRETMEM_SITES load_key: load_key at 0x[0-9a-f]+ .* in $RT_BIN/route_prog_linked\$"
	assert_line --regexp "^${SM_PREFIX}SECRETMEM_SITES static_secret: static_secret at 0x[0-9a-f]+ .* in $RT_BIN/route_prog_linked\$"
	assert_line --regexp "^${SM_PREFIX}SECRETMEM_WRAPPERS xmalloc: xmalloc at 0x[0-9a-f]+ in $RT_BIN/route_prog_linked"
	assert_line --regexp "^${SM_PREFIX}object $RT_BIN/libroutetest.so: matches SECRETMEM_LIBS"
	assert_line --regexp "^${SM_PREFIX}object $RT_BIN/libannotated.so: annotated with SECRETMEM_ANNOTATE_LIBRARY"
	refute_line --partial "matches no"
}

@test "SECRETMEM_LOG=debug names a library matched at dlopen" {
	run -0 --separate-stderr with_shim SECRETMEM_LOG=debug SECRETMEM_LIBS=libroutetest.so \
		"$PROG" lib "$RT_BIN/libroutetest.so"
	assert_block lib 1
	output=$stderr
	mapfile -t lines <<<"$stderr"
	assert_line --regexp "^${SM_PREFIX}object $RT_BIN/libroutetest.so: matches SECRETMEM_LIBS"
}

@test "a rule that matches nothing: an info line at SECRETMEM_LOG=info, no error" {
	run -0 --separate-stderr with_shim SECRETMEM_LOG=info \
		SECRETMEM_SITES=no_such_function SECRETMEM_LIBS='libnothing*.so' "$PROG" load_key plain
	assert_block load_key 0
	assert_block plain 0
	output=$stderr
	mapfile -t lines <<<"$stderr"
	assert_line --regexp "^${SM_PREFIX}.*SECRETMEM_SITES.*no_such_function.*matches no"
	assert_line --regexp "^${SM_PREFIX}.*SECRETMEM_LIBS.*libnothing\\*\\.so.*matches no"
	# exactly those two rule lines, and nothing said above the info level
	assert_equal "$(grep -c 'matches no' <<<"$stderr")" 2
	refute_line --regexp "(not valid|error|warning|cannot)"
}

# (at the default log level it is a warning: tests/sites.bats)

@test "the info line for an unmatched LIB:FUNCTION names the whole rule" {
	run -0 --separate-stderr with_shim SECRETMEM_LOG=info SECRETMEM_SITES='libnomatch*:load_key' \
		"$PROG" load_key
	assert_block load_key 0
	output=$stderr
	mapfile -t lines <<<"$stderr"
	assert_line --regexp "^${SM_PREFIX}.*SECRETMEM_SITES.*libnomatch\\*:load_key.*matches no"
}

# ---- controls ----

@test "with no rule nothing is secret and no secret memory is mapped" {
	start_paused "$PROG" pause plain load_key static_secret dup_key read_line depth wrapped_key
	refute_output --regexp 'secret=1'
	assert_lives_ordinary load_key
	assert_lives_ordinary dup_key
	assert_has_secretmem none
}

@test "every case together: is_secret agrees with /proc/PID/maps for every block" {
	start_paused SECRETMEM_LIBS=libroutetest.so \
		SECRETMEM_SITES=load_key,static_secret,dup_key,read_line,asprintf_key,memstream_key,wrapped_key,outer,realloc_key \
		SECRETMEM_WRAPPERS=xmalloc SECRETMEM_DEPTH=1 \
		"$LINKED" pause plain load_key static_secret dup_key read_line asprintf_key memstream_key \
		wrapped_key depth realloc scope threads lib_linked annotated_linked
	local name secret addr line n=0
	while read -r name secret addr; do
		[[ $secret == secret=[01] && $addr == addr=0x* ]] || continue
		[[ $name == realloc_*_before || $name == cross_block ]] && continue # freed
		line=$(maps_line_of "$RT_PID" "${addr#addr=}")
		if [[ $secret == secret=1 ]]; then
			[[ $line == *" /secretmem (deleted)" ]] || fail "$name says secret but lives in: $line"
		else
			[[ -n $line && $line != *" /secretmem (deleted)" ]] || fail "$name says ordinary but lives in: $line"
		fi
		n=$((n + 1))
	done <"$RT_OUT"
	((n >= 23)) || fail "only $n blocks checked"
	assert_block plain 0
	assert_block inner 1
	assert_block wrapped_key 1
}
