#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# SECRETMEM_SITES and the symbol reader on code built the way distributions build
# it (-O2 -g, tail calls, inlining and identical-code folding allowed; also
# -fno-plt, -O3 -flto and clang): damaged section headers, tail calls into the
# allocator, C++ names, objects opened by a relative path or replaced on disk,
# programs started through ld.so, and rules that match nothing. Each case checks
# where the block lives (its /proc/PID/maps line is /secretmem, /proc/PID/mem
# gives EIO) beside an untagged control that another process reads in full.

load helpers
load routing-helpers

# the builds every tail-call case runs under (built by make, Makefile.am): o2 gcc
# -O2 -g, noplt gcc -O2 -g -fno-plt, lto gcc -O3 -flto -g, clang clang -O2 -g
VARIANTS=(o2 noplt lto clang)

setup_file() {
	rt_build memread
	local B=$RT_BIN S=$abs_top_srcdir/tests T=$abs_top_builddir/tests/sites v f
	for v in "${VARIANTS[@]}"; do
		[[ $v != clang || -n ${CLANG:-} ]] || continue
		mkdir -p "$B/$v"
		cp -p "$T/$v/libsites.so" "$T/$v/sites_prog" "$B/$v/" ||
			{ echo "tests/sites/$v is missing: build the test programs first (make check)" >&2; return 1; }
	done
	# libdyn.so for dlopen (the same code as a library of its own) and sites_dl, a
	# program without it; the C++, inlined (gcc -O2 -g, clang -O2 -g), -O3 -flto -g
	# (and without -g) and non-PIE programs; the upgrade's replacement library
	local files=(libdyn.so sites_dl sites_cxx inline_gcc libsitesplugin.so cxx_host sites_nopie
		lto_gcc lto_nodebug_gcc libkeys.so.new merged_gcc merged_noplt)
	[[ -z ${CLANG:-} ]] || files+=(inline_clang lto_clang lto_nodebug_clang)
	[[ -z ${CLANGXX:-} ]] || files+=(sites_cxx_clang)
	for f in "${files[@]}"; do
		cp -p "$T/$f" "$B/" ||
			{ echo "tests/sites/$f is missing: build the test programs first (make check)" >&2; return 1; }
	done
	if [[ -n ${CLANG:-} ]]; then
		# the same without its debug information (symbols kept)
		strip --strip-debug -o "$B/inline_nodebug" "$B/inline_clang" || return 1
	fi
	# damaged copies of libdyn.so, made here: damaging an ELF file is the test
	local sec mode
	for sec in .symtab .strtab; do
		for mode in wrap huge past; do
			python3 "$S/elf_damage.py" "$B/libdyn.so" "$B/libdamaged$sec-$mode.so" "$sec" "$mode" ||
				return 1
		done
	done
}

setup() {
	sm_setup
	B=$RT_BIN
}

teardown() {
	stop_paused
	[[ -z ${DIR:-} ]] || rm -rf "$DIR"
	[[ -z ${DBG_FILE:-} ]] || rm -f "$DBG_FILE"
}

# ---- the symbol reader ----

@test "damaged section headers (.symtab/.strtab offset + size wrapping, near 2^63, past the end): the library runs" {
	local sec mode lib
	for sec in .symtab .strtab; do
		for mode in wrap huge past; do
			lib=$B/libdamaged$sec-$mode.so
			# the premise: the loader does not mind, the program runs without the shim
			run -0 "$B/sites_dl" dlopen "$lib" call lib_key
			assert_block lib_key 0
			# under the shim the damaged table is skipped; .dynsym still names lib_key
			run -0 --separate-stderr with_shim SECRETMEM_SITES=lib_key "$B/sites_dl" dlopen "$lib" call lib_key
			assert_block lib_key 1
		done
	done
	start_paused SECRETMEM_SITES=lib_key "$B/sites_dl" pause dlopen "$B/libdamaged.symtab-wrap.so" call lib_key tail_plain
	assert_lives_secret lib_key
	assert_lives_ordinary tail_plain
}

# ---- tail calls: a site that ends in "return malloc(n)" is "jmp malloc" ----

# Runs the tail-call cases of one build and checks where each block lives.
tail_calls() {
	local v=$1 prog=$B/$1/sites_prog
	[[ -x $prog ]] || skip "no $v build (compiler missing)"
	# the premise: each site really ends in a jump to the allocator
	run -0 objdump -d --no-show-raw-insn "$B/$v/libsites.so"
	assert_output --regexp "<lib_tail_key>:"$'\n'" +[0-9a-f]+:\s+(jmp|bnd jmp)\s"
	local cases=(lib_tail_key lib_tail_dup tail_key tail_dup tail_calloc)
	start_paused SECRETMEM_SITES=tail_key,tail_dup,tail_calloc,lib_tail_key,lib_tail_dup \
		"$prog" pause "${cases[@]}" tail_plain lib_tail_plain
	local c
	for c in "${cases[@]}"; do
		assert_lives_secret "$c"
	done
	# -O3 -flto inlines the program's sites into main (found through its debug
	# information) and merges tail_plain's identical malloc(64) into the inlined
	# tail_key: one call instruction serves both, so both are secret (the safe
	# answer). The library's tail_plain stays the control there.
	[[ $v == lto ]] || assert_lives_ordinary tail_plain
	assert_lives_ordinary lib_tail_plain
	assert_has_secretmem
}

@test "tail calls: gcc -O2 -g: malloc, strdup, calloc from a site's tail, direct and through the PLT" {
	tail_calls o2
}

@test "tail calls: gcc -O2 -g -fno-plt: through the GOT (call *disp(%rip))" {
	run -0 objdump -d "$B/noplt/sites_prog"
	assert_output --regexp "call +\*0x[0-9a-f]+\(%rip\).*<lib_tail_key"
	tail_calls noplt
}

@test "tail calls: gcc -O3 -flto -g: a library's sites" {
	tail_calls lto
}

@test "tail calls: clang -O2 -g" {
	tail_calls clang
}

# ---- rules that match nothing ----

@test "a SITES entry or LIBS glob that matches nothing is a warning at the default log level" {
	run -0 --separate-stderr with_shim SECRETMEM_SITES=no_such_function,libnomatch*:tail_key \
		SECRETMEM_LIBS='libnothing*.so' "$B/o2/sites_prog" tail_key
	assert_block tail_key 0
	output=$stderr
	mapfile -t lines <<<"$stderr"
	assert_line "${SM_PREFIX}SECRETMEM_SITES entry no_such_function matches no function in the objects loaded now; it protects nothing unless an object loaded later defines it (program: sites_prog)"
	assert_line --regexp "^${SM_PREFIX}SECRETMEM_SITES entry libnomatch\\*:tail_key matches no function .* loaded later"
	assert_line "${SM_PREFIX}SECRETMEM_LIBS pattern libnothing*.so matches no object loaded now; it protects nothing unless an object loaded later matches it (program: sites_prog)"
	assert_equal "${#lines[@]}" 3
	# a rule that matches says nothing
	run -0 --separate-stderr with_shim SECRETMEM_SITES=tail_key SECRETMEM_LIBS=libsites.so "$B/o2/sites_prog" tail_key
	assert_block tail_key 1
	assert_equal "$stderr" ""
	# SECRETMEM_LOG=error silences it
	run -0 --separate-stderr with_shim SECRETMEM_LOG=error SECRETMEM_SITES=no_such_function "$B/o2/sites_prog" tail_key
	assert_equal "$stderr" ""
}

@test "a wrapper the preload reaches first (a shell, timeout) names itself in its warning; the program it starts matches and says nothing" {
	local shell
	shell=$(basename "$(readlink -f /bin/sh)")
	run -0 --separate-stderr with_shim SECRETMEM_SITES=tail_key \
		sh -c 'exec timeout 30 "$0" tail_key' "$B/o2/sites_prog"
	assert_block tail_key 1
	output=$stderr
	mapfile -t lines <<<"$stderr"
	assert_line "${SM_PREFIX}SECRETMEM_SITES entry tail_key matches no function in the objects loaded now; it protects nothing unless an object loaded later defines it (program: $shell)"
	assert_line "${SM_PREFIX}SECRETMEM_SITES entry tail_key matches no function in the objects loaded now; it protects nothing unless an object loaded later defines it (program: timeout)"
	assert_equal "${#lines[@]}" 2
}

@test "a rule first matched by an object loaded later: an info line names it" {
	# (the program has a lib_key of its own: the rule names the library's)
	run -0 --separate-stderr with_shim SECRETMEM_LOG=info SECRETMEM_SITES='libdyn*:lib_key' \
		SECRETMEM_LIBS='libdyn*.so' "$B/sites_dl" dlopen "$B/libdyn.so" call lib_key
	assert_block lib_key 1
	output=$stderr
	mapfile -t lines <<<"$stderr"
	assert_line --partial "SECRETMEM_SITES entry libdyn*:lib_key matches no function"
	assert_line "${SM_PREFIX}SECRETMEM_SITES entry libdyn*:lib_key now matches lib_key in $B/libdyn.so, loaded after start-up"
	assert_line "${SM_PREFIX}SECRETMEM_LIBS pattern libdyn*.so now matches $B/libdyn.so, loaded after start-up"
	# not at the default level
	run -0 --separate-stderr with_shim SECRETMEM_SITES='libdyn*:lib_key' "$B/sites_dl" dlopen "$B/libdyn.so" call lib_key
	assert_block lib_key 1
	[[ $stderr != *"now matches"* ]] || fail "info line at the default level: $stderr"
}

# ---- which file the symbols come from ----

@test "a library opened by a relative path, then chdir: its static site is found" {
	# hidden_key is static (.symtab only): found only in the file really mapped
	run -0 nm "$B/libdyn.so"
	assert_line --regexp ' t hidden_key$'
	start_paused SECRETMEM_SITES=hidden_key "$B/sites_dl" pause chdir "$B" dlopen ./libdyn.so chdir / \
		call lib_hidden_entry call lib_key
	assert_lives_secret lib_hidden_entry
	assert_lives_ordinary lib_key
}

# A directory others can enter (the Bats one is root's alone), with libkeys.so (a
# copy of libdyn.so) and libkeys.so.new (another library, as an upgrade would
# install: no hidden_key, other addresses); sets DIR.
upgrade_dir() {
	DIR=$(mktemp -d /tmp/sites-upgrade.XXXXXX)
	cp "$B/libdyn.so" "$DIR/libkeys.so"
	cp "$B/libkeys.so.new" "$DIR/libkeys.so.new"
	cp "$B/sites_dl" "$DIR/"
	chmod -R a+rX "$DIR"
	chmod 777 "$DIR" # the other user renames in it
}

# The library is replaced on disk (rename, as dpkg does) after dlopen and before
# its first allocation. (sites_dl has a hidden_key and a lib_key of its own, so
# the rules match at start-up and say nothing.)
REPLACED=(pause dlopen libkeys.so mv libkeys.so.new libkeys.so call lib_hidden_entry call lib_key)

@test "a library replaced on disk after it was loaded, root: symbols from the mapping itself" {
	[[ $(id -u) == 0 ]] || skip "needs root (/proc/self/map_files)"
	upgrade_dir
	start_paused SECRETMEM_SITES=hidden_key,lib_key "$DIR/sites_dl" "${REPLACED[@]/libkeys/$DIR/libkeys}"
	assert_lives_secret lib_hidden_entry
	assert_lives_secret lib_key
	[[ ! -s $RT_ERR ]] || fail "unexpected messages: $(cat "$RT_ERR")"
}

@test "a library replaced on disk, not root: exported sites still match, a warning names what is lost" {
	[[ $(id -u) == 0 ]] || skip "needs root to become another user"
	upgrade_dir
	# the premise: map_files is closed to a process without CAP_SYS_ADMIN/CAP_CHECKPOINT_RESTORE
	start_paused_under setpriv --reuid=65534 --regid=65534 --clear-groups -- \
		SECRETMEM_SITES=hidden_key,lib_key "$DIR/sites_dl" "${REPLACED[@]/libkeys/$DIR/libkeys}"
	assert_lives_secret lib_key
	# hidden_key is static: .dynsym does not have it
	assert_lives_ordinary lib_hidden_entry blk:hidden_key
	run grep -c . "$RT_ERR"
	assert_output 1
	run cat "$RT_ERR"
	assert_output "${SM_PREFIX}cannot read the file of $DIR/libkeys.so (replaced or deleted since it was loaded): only its exported functions can match SECRETMEM_SITES (static ones cannot)"
}

# ---- programs started through the loader ----

LDSO=/lib64/ld-linux-x86-64.so.2

@test "ld.so ./prog (PIE and non-PIE): the program's sites match, the loader stays machinery" {
	[[ -x $LDSO ]] || skip "no $LDSO"
	local p
	for p in sites_dl sites_nopie; do
		# the premise: run this way, /proc/self/exe is the loader
		run -0 readelf -h "$B/$p"
		start_paused SECRETMEM_LOG=debug SECRETMEM_SITES=tail_key "$LDSO" "$B/$p" pause tail_key tail_plain
		[[ $(readlink "/proc/$RT_PID/exe") == *ld-linux* ]] || fail "not started through ld.so"
		grep -q "^${SM_PREFIX}object .*ld-linux.*: allocation machinery" "$RT_ERR" ||
			fail "the loader is not machinery: $(grep object "$RT_ERR")"
		! grep -q "^${SM_PREFIX}object $B/$p: allocation machinery" "$RT_ERR" ||
			fail "the program is taken for machinery"
		assert_lives_secret tail_key
		assert_lives_ordinary tail_plain
		stop_paused
	done
}

@test "ld.so --preload, from the program's directory: SECRETMEM_LIBS names the program" {
	[[ -x $LDSO ]] || skip "no $LDSO"
	local p
	for p in sites_dl sites_nopie; do
		cd "$B"
		# (env runs under the shim too, and its warning that the glob matches nothing
		# of env is right)
		start_paused SECRETMEM_LIBS="$p" env -u LD_PRELOAD "$LDSO" --preload "$SHIM" "./$p" pause tail_key tail_plain
		assert_lives_secret tail_key
		assert_lives_secret tail_plain
		stop_paused
		# the control: a glob naming another program
		start_paused SECRETMEM_LIBS=other_prog SECRETMEM_LOG=error env -u LD_PRELOAD "$LDSO" --preload "$SHIM" "./$p" pause tail_plain
		assert_lives_ordinary tail_plain
		stop_paused
	done
}

# ---- C++ names ----

# cxx_case RULE SECRET... -- ORDINARY...: under SECRETMEM_SITES=RULE, the blocks
# named before -- live in /secretmem, those after it are readable, in the g++ and
# the clang++ build.
cxx_case() {
	local rule=$1 p c
	shift
	local secret=() ordinary=()
	while [[ $1 != -- ]]; do
		secret+=("$1")
		shift
	done
	shift
	ordinary=("$@")
	for p in sites_cxx sites_cxx_clang; do
		[[ -x $B/$p ]] || continue
		start_paused SECRETMEM_SITES="$rule" "$B/$p" pause "${secret[@]}" "${ordinary[@]}"
		for c in "${secret[@]}"; do
			assert_lives_secret "$c"
		done
		for c in "${ordinary[@]}"; do
			assert_lives_ordinary "$c"
		done
		[[ ! -s $RT_ERR ]] || fail "$p: unexpected messages: $(cat "$RT_ERR")"
		stop_paused
	done
}

@test "C++: an unqualified name (make_key_vector, filling a std::vector)" {
	cxx_case make_key_vector make_key_vector -- load_int save
}

@test "C++: Class::method matches every overload, in every namespace" {
	cxx_case KeyStore::load load_int load_str other_load -- save make_key_vector
}

@test "C++: ns::Class::method matches that namespace's overloads only" {
	cxx_case crypto::KeyStore::load load_int load_str -- other_load save
}

@test "C++: names as c++filt prints them with an ABI tag, an anonymous namespace, operator() and a class template's arguments, or without them" {
	# a function returning std::string is crypto::KeyStore::load_text[abi:cxx11](int)
	cxx_case 'crypto::KeyStore::load_text[abi:cxx11](int)' load_text -- load_int call_op
	cxx_case crypto::KeyStore::load_text load_text -- load_int
	cxx_case 'crypto::(anonymous namespace)::hidden_key' hidden_key -- box_fill
	cxx_case crypto::hidden_key hidden_key -- load_int
	# inlined, it is known by its short name and by its qualified name, which
	# GCC's debug information does not record (no linkage name): the shim makes it
	# from the scopes
	cxx_case inlined_hidden inlined_hidden -- hidden_key
	cxx_case crypto::inlined_hidden inlined_hidden -- hidden_key
	cxx_case 'crypto::(anonymous namespace)::inlined_hidden' inlined_hidden -- hidden_key
	# inlined with an ABI tag, found through the debug information under the
	# rule with its tag or without (the tag is no part of the DWARF name)
	cxx_case 'inline_text[abi:cxx11]' inline_text -- load_text
	cxx_case 'inline_text[abi:cxx11](int)' inline_text -- load_text
	cxx_case inline_text inline_text -- load_text
	cxx_case 'crypto::KeyStore::operator()' call_op -- load_int load_text
	cxx_case 'KeyStore::operator()(int)' call_op -- load_int
	cxx_case 'crypto::Box<int>::fill' box_fill -- hidden_key
	cxx_case Box::fill box_fill -- load_int
	# "operator" only as a word of its own: binary_operator() is a function
	cxx_case crypto::binary_operator binary_operator -- call_op
	cxx_case 'binary_operator()' binary_operator -- call_op
}

@test "C++: inlined functions the debug information knows by their names alone match by their qualified names" {
	# a static function of a namespace, a method of a class of an anonymous
	# namespace defined outside the class, a function of a nested namespace's
	# anonymous namespace: each inlined, with no copy of its own
	cxx_case crypto::static_key static_key -- vault_key deep_key hidden_key
	cxx_case crypto::Vault::open_key vault_key -- static_key deep_key
	cxx_case 'crypto::(anonymous namespace)::Vault::open_key' vault_key -- static_key
	cxx_case Vault::open_key vault_key -- static_key deep_key
	cxx_case crypto::inner::deep_key deep_key -- static_key vault_key
	cxx_case inner::deep_key deep_key -- static_key
	cxx_case deep_key deep_key -- static_key
	# a function template (GCC's name: tkey<int>) and a destructor (~Guard)
	cxx_case crypto::tkey tmpl_key -- static_key dtor_key
	cxx_case 'crypto::tkey<int>' tmpl_key -- dtor_key
	cxx_case tkey tmpl_key -- dtor_key
	cxx_case 'crypto::Guard::~Guard' dtor_key -- tmpl_key
	cxx_case 'Guard::~Guard' dtor_key -- tmpl_key
	# extern "C" in a namespace: its name is its own, as c++filt prints it
	cxx_case c_key c_key -- dtor_key
	run -0 --separate-stderr with_shim SECRETMEM_SITES=crypto::c_key "$B/sites_cxx" c_key
	assert_output --partial "c_key secret=0"
	[[ $stderr == *"SECRETMEM_SITES entry crypto::c_key matches no function"* ]] ||
		fail "no warning for a C function named with a namespace: $stderr"
	# the scopes must match: another namespace's name is not the function
	run -0 --separate-stderr with_shim SECRETMEM_SITES=other::static_key "$B/sites_cxx" static_key
	assert_output --partial "static_key secret=0"
	[[ $stderr == *"SECRETMEM_SITES entry other::static_key matches no function"* ]] ||
		fail "no warning for a rule whose scope is wrong: $stderr"
}

@test "C++: a full signature picks one overload" {
	cxx_case 'crypto::KeyStore::load(char const*, int)' load_str -- load_int other_load
	# spaces do not matter; with the LIBGLOB: prefix too
	cxx_case 'sites_cxx*:KeyStore::load(char const *,int)' load_str -- load_int
}

@test "C++: a plugin that loads no C++ runtime, opened by a C program: qualified names still match" {
	# the premise: no libstdc++ in the process, so no __cxa_demangle
	run -0 readelf -d "$B/libsitesplugin.so"
	refute_output --partial 'libstdc++'
	run -0 --separate-stderr with_shim SECRETMEM_SITES=vault::Box::open "$B/cxx_host" "$B/libsitesplugin.so"
	assert_block open 1
	run -0 --separate-stderr with_shim SECRETMEM_SITES=other::Box::open "$B/cxx_host" "$B/libsitesplugin.so"
	assert_block open 0
}

@test "C++: mangled names still work, and a signature c++filt would not print warns" {
	cxx_case _ZN6crypto8KeyStore4loadEi load_int -- load_str other_load
	run -0 --separate-stderr with_shim SECRETMEM_SITES='KeyStore::load(const char*, int)' "$B/sites_cxx" load_str
	assert_block load_str 0
	[[ $stderr == *"SECRETMEM_SITES entry KeyStore::load(const char*, int) matches no function"* ]] ||
		fail "no warning: $stderr"
}

# ---- inlined copies of sites ----

@test "inlined sites (gcc -O2 -g, clang -O2 -g): found through the debug information" {
	local p
	for p in inline_gcc inline_clang; do
		[[ -x $B/$p ]] || continue
		# the premise: inl_key has no symbol of its own; no call to glob_key remains in main
		run -0 nm "$B/$p"
		refute_line --regexp ' inl_key$'
		run -0 objdump -d --no-show-raw-insn "$B/$p"
		refute_output --regexp "call +[0-9a-f]+ <inl_key>"
		[[ $p == inline_gcc ]] || refute_output --regexp "call +[0-9a-f]+ <glob_key>"
		start_paused SECRETMEM_SITES=inl_key,glob_key "$B/$p" pause
		assert_lives_secret inl_key
		assert_lives_secret glob_key
		assert_lives_ordinary plain
		[[ ! -s $RT_ERR ]] || fail "$p: unexpected messages: $(cat "$RT_ERR")"
		stop_paused
	done
}

@test "inlined sites of a program whose debug information is a separate file under /usr/lib/debug/.build-id (a -dbgsym package), its build ID with bytes below 0x10: found there" {
	[[ $(id -u) == 0 ]] || skip "needs root (writes /usr/lib/debug)"
	local id=040acfbefb0538da730011223344556677889901
	# a copy of inline_gcc with that build ID, its debug information moved out
	python3 -c "import struct,sys; d=bytes.fromhex('$id'); sys.stdout.buffer.write(struct.pack('<III',4,len(d),3)+b'GNU\\0'+d)" >"$BATS_TEST_TMPDIR/note"
	cp "$B/inline_gcc" "$BATS_TEST_TMPDIR/dbg_prog"
	objcopy --update-section .note.gnu.build-id="$BATS_TEST_TMPDIR/note" "$BATS_TEST_TMPDIR/dbg_prog"
	run -0 readelf -n "$BATS_TEST_TMPDIR/dbg_prog"
	assert_output --partial "Build ID: $id"
	mkdir -p /usr/lib/debug/.build-id/04
	DBG_FILE=/usr/lib/debug/.build-id/04/${id:2}.debug
	objcopy --only-keep-debug "$BATS_TEST_TMPDIR/dbg_prog" "$DBG_FILE"
	strip --strip-debug "$BATS_TEST_TMPDIR/dbg_prog"
	start_paused SECRETMEM_SITES=inl_key,glob_key "$BATS_TEST_TMPDIR/dbg_prog" pause
	assert_lives_secret inl_key
	assert_lives_secret glob_key
	assert_lives_ordinary plain
	[[ ! -s $RT_ERR ]] || fail "unexpected messages: $(cat "$RT_ERR")"
	stop_paused
	# a rule whose name the file's DWARF strings do not hold: the file is not
	# walked (what a system library's -dbg file costs every process start); the
	# rule that names inl_key walks it
	local skip="the debug information of $DBG_FILE names no SECRETMEM_SITES function: not walked"
	run -0 --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_LOG=debug SECRETMEM_SITES=no_such_site \
		"$BATS_TEST_TMPDIR/dbg_prog"
	[[ $stderr == *"$skip"* ]] || fail "not skipped: $stderr"
	run -0 --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_LOG=debug SECRETMEM_SITES=no_such_site,inl_key \
		"$BATS_TEST_TMPDIR/dbg_prog"
	[[ $stderr != *"$skip"* ]] || fail "skipped: $stderr"
	assert_line --regexp "^inl_key secret=1 "
	# control: without the file, the inlined copy is not found, and a warning says so
	rm -f "$DBG_FILE"
	start_paused SECRETMEM_SITES=inl_key,glob_key "$BATS_TEST_TMPDIR/dbg_prog" pause
	assert_lives_ordinary inl_key
	grep -q "no debug information" "$RT_ERR" || fail "no warning: $(cat "$RT_ERR")"
}

@test "an inlined site with no debug information: a warning at the default level says what to do" {
	[[ -x $B/inline_nodebug ]] || skip "no clang"
	start_paused SECRETMEM_SITES=glob_key "$B/inline_nodebug" pause
	# the out-of-line copy matches and catches nothing: the block is ordinary
	assert_lives_ordinary glob_key
	run cat "$RT_ERR"
	assert_output "${SM_PREFIX}$B/inline_nodebug has a SECRETMEM_SITES function but no debug information: copies of it the compiler inlined are not found (install its debug symbols, e.g. its -dbgsym package, or build with -g)"
}

@test "two sites inlined as identical code and merged (gcc -O2 -g, -fno-plt): the one the debug information names is secret, the one it lost warns" {
	local p msg
	for p in merged_gcc merged_noplt; do
		# the control: the merged copy counts as alloc_key's and copy_key's, and
		# the block it allocates is secret
		start_paused SECRETMEM_SITES=alloc_key,copy_key "$B/$p" pause
		assert_lives_secret alloc_key
		assert_lives_secret copy_key
		assert_lives_ordinary unit_key
		[[ ! -s $RT_ERR ]] || fail "$p: unexpected messages: $(cat "$RT_ERR")"
		stop_paused
		# grow_key and dup_name have no copy left of their own: what main
		# allocates through the merged code is ordinary, and each says so once
		# (the warning that it matches nothing is not repeated)
		start_paused SECRETMEM_SITES=grow_key,dup_name "$B/$p" pause
		assert_lives_ordinary alloc_key
		assert_lives_ordinary copy_key
		msg="and its debug information records no copy of it (merged into identical code, or removed): what such a copy allocates is not secret; name the function it was inlined into, or use a scope (secretmem.h) (program: $p)"
		run cat "$RT_ERR"
		assert_equal "${#lines[@]}" 2
		assert_line "${SM_PREFIX}SECRETMEM_SITES entry grow_key: the compiler inlined grow_key in $B/$p, $msg"
		assert_line "${SM_PREFIX}SECRETMEM_SITES entry dup_name: the compiler inlined dup_name in $B/$p, $msg"
		stop_paused
		# unit_key, a static inline site of a header: inlined into main, and in
		# sites_merged_unit.c inlined and removed as dead code (that unit's
		# abstract instance says "inlined", with no copy); the rule matches main's
		# copy, and says nothing
		run -0 objdump --dwarf=info "$B/$p"
		(($(grep -c 'DW_AT_name.*: unit_key$' <<<"$output") >= 2)) || fail "$p: unit_key is not in two units"
		start_paused SECRETMEM_SITES=unit_key "$B/$p" pause
		assert_lives_secret unit_key
		assert_lives_ordinary alloc_key
		[[ ! -s $RT_ERR ]] || fail "$p: unexpected messages: $(cat "$RT_ERR")"
		stop_paused
	done
}

@test "a site in another file inlined by -O3 -flto -g (gcc, clang): found through the link's debug information" {
	local cc n=0
	# built by make (Makefile.am): -O3 -flto -g, and the control -O3 -flto
	for cc in gcc clang; do
		[[ $cc != clang || -n ${CLANG:-} ]] || continue
		# the premise: no lto_key symbol is left, so only DWARF knows
		run -0 nm "$B/lto_$cc"
		refute_line --regexp ' lto_key$'
		run -0 --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_SITES=lto_key "$B/lto_$cc"
		assert_output $'lto_key secret=1\nplain secret=0'
		# the control: without -g the rule matches nothing, and says so
		run -0 --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_SITES=lto_key "$B/lto_nodebug_$cc"
		assert_output $'lto_key secret=0\nplain secret=0'
		[[ $stderr == *"SECRETMEM_SITES entry lto_key matches no function"* ]] || fail "$cc: $stderr"
		n=$((n + 1))
	done
	((n >= 1)) || fail "no compiler"
}
