#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# An object matches a SECRETMEM_LIBS pattern (and the LIBGLOB of SECRETMEM_SITES
# and SECRETMEM_WRAPPERS) by any name it is known by: the name the loader was
# given (a relative path, a path with "..", a symbolic link), the canonical path
# of the file mapped (what /proc/PID/maps shows, and secretmem-audit proposes),
# their file names, and its DT_SONAME; the main program also by the name it was
# started by. Each case checks
# the block's mapping from outside (/secretmem, unreadable through /proc/PID/mem),
# with a control pattern that names none of them and leaves it ordinary. The
# probes (tests/names_host.c, tests/names_key.c) are built as distributions
# build: -O2 -g, -O3 -flto -fno-plt, and with clang where it is installed.

load helpers
load routing-helpers

setup_file() {
	rt_build memread
	local stage=$BATS_FILE_TMPDIR/stage v d
	rt_probe_variants names_host "$stage"
	rt_probe_variants names_linked "$stage"
	rt_probe_variants libnameskey.so "$stage"
	# the canonical directory, as getcwd and /proc/PID/maps name it
	RT_BIN=$(cd -P "$RT_BIN" && pwd)
	export RT_BIN
	for v in $VARIANTS_LIST; do
		d=$RT_BIN/$v
		mkdir -p "$d/bin" "$d/lib"
		mv "$stage/$v/names_host" "$stage/$v/names_linked" "$d/bin/"
		mv "$stage/$v/libnameskey.so" "$d/lib/libnameskey.so.1.2.3"
		ln -s libnameskey.so.1.2.3 "$d/lib/libnameskey.so.1" # as ldconfig makes it
		ln -s libnameskey.so.1 "$d/lib/libnameskey.so"       # as a -dev package has it
		cp "$d/lib/libnameskey.so.1.2.3" "$d/lib/keyplug-1.2.so"
		ln -s keyplug-1.2.so "$d/lib/keyplug.so" # a plugin installed under a versioned name
		ln -s bin "$d/linkbin"
	done
	head -c 32 /dev/urandom >"$BATS_FILE_TMPDIR/key.bin"
	KEYHEX=$(xxd -p -c 64 "$BATS_FILE_TMPDIR/key.bin")
	export KEYHEX
}

setup() {
	sm_setup
	read -ra VARIANTS <<<"$VARIANTS_LIST"
}

teardown() {
	stop_paused
}

# nm_secret PATTERN PROGRAM ARGS...: under SECRETMEM_LIBS=PATTERN, the key block
# lives in /secretmem. nm_ordinary: it lives in ordinary memory, readable.
nm_secret() {
	start_paused SECRETMEM_LIBS="$1" "$2" pause "${@:3}"
	assert_lives_secret key
	stop_paused
}

nm_ordinary() {
	start_paused SECRETMEM_LIBS="$1" "$2" pause "${@:3}"
	assert_lives_ordinary key
	stop_paused
}

@test "names: a library dlopened by a relative path (./lib/libnameskey.so.1.2.3) matches a full-path glob" {
	local v d
	for v in "${VARIANTS[@]}"; do
		d=$RT_BIN/$v
		cd "$d"
		nm_secret "$d/lib/libnameskey.so.1.2.3" bin/names_host dlopen ./lib/libnameskey.so.1.2.3
		nm_secret "$d/lib/libnames*" bin/names_host dlopen ./lib/libnameskey.so.1.2.3
		nm_secret ./lib/libnameskey.so.1.2.3 bin/names_host dlopen ./lib/libnameskey.so.1.2.3
		nm_ordinary "$d/lib/libother.so" bin/names_host dlopen ./lib/libnameskey.so.1.2.3
	done
}

@test "names: a library dlopened by a path with .. (bin/../lib) matches its canonical path" {
	local v d
	for v in "${VARIANTS[@]}"; do
		d=$RT_BIN/$v
		nm_secret "$d/lib/libnameskey.so.1.2.3" "$d/bin/names_host" dlopen "$d/bin/../lib/libnameskey.so.1.2.3"
		nm_ordinary "$d/bin/libnameskey.so.1.2.3" "$d/bin/names_host" dlopen "$d/bin/../lib/libnameskey.so.1.2.3"
	done
}

@test "names: a library found at start-up through RUNPATH \$ORIGIN/../lib matches its canonical path, and the start-up report says it matches" {
	local v d
	for v in "${VARIANTS[@]}"; do
		d=$RT_BIN/$v
		start_paused SECRETMEM_LIBS="$d/lib/libnameskey.so.1.2.3" "$d/bin/names_linked" pause linked
		assert_lives_secret key
		stop_paused
		[[ $(cat "$RT_ERR") != *"matches no object loaded now"* ]] || fail "$v: $(cat "$RT_ERR")"
		# control: a pattern that names none of its names leaves it ordinary, and says so
		start_paused SECRETMEM_LIBS="$d/lib/libnameskey.so.2" "$d/bin/names_linked" pause linked
		assert_lives_ordinary key
		stop_paused
		[[ $(cat "$RT_ERR") == *"SECRETMEM_LIBS pattern $d/lib/libnameskey.so.2 matches no object loaded now"* ]] ||
			fail "$v: no warning: $(cat "$RT_ERR")"
	done
}

@test "names: a plugin dlopened through a symbolic link (keyplug.so -> keyplug-1.2.so) matches by the file's own name, as /proc/PID/maps shows it" {
	local v d
	for v in "${VARIANTS[@]}"; do
		d=$RT_BIN/$v
		nm_secret keyplug-1.2.so "$d/bin/names_host" dlopen "$d/lib/keyplug.so"
		nm_secret "$d/lib/keyplug-1.2.so" "$d/bin/names_host" dlopen "$d/lib/keyplug.so"
		nm_secret keyplug.so "$d/bin/names_host" dlopen "$d/lib/keyplug.so"
		nm_ordinary keyplug-1.3.so "$d/bin/names_host" dlopen "$d/lib/keyplug.so"
	done
}

@test "names: a library dlopened by its development link (libnameskey.so) matches by its SONAME (libnameskey.so.1) and its file's name (libnameskey.so.1.2.3)" {
	local v d
	for v in "${VARIANTS[@]}"; do
		d=$RT_BIN/$v
		nm_secret libnameskey.so.1 "$d/bin/names_host" dlopen "$d/lib/libnameskey.so"
		nm_secret libnameskey.so.1.2.3 "$d/bin/names_host" dlopen "$d/lib/libnameskey.so"
		nm_ordinary libnameskey.so.2 "$d/bin/names_host" dlopen "$d/lib/libnameskey.so"
	done
}

@test "names: the LIBGLOB of SECRETMEM_SITES matches by the same names (a symlinked plugin by its file's name)" {
	local v d
	for v in "${VARIANTS[@]}"; do
		d=$RT_BIN/$v
		start_paused SECRETMEM_SITES=keyplug-1.2.so:nk_load "$d/bin/names_host" pause dlopen "$d/lib/keyplug.so"
		assert_lives_secret key
		stop_paused
		start_paused SECRETMEM_SITES=keyplug-1.3.so:nk_load "$d/bin/names_host" pause dlopen "$d/lib/keyplug.so"
		assert_lives_ordinary key
		stop_paused
	done
}

@test "names: the LIBGLOB of SECRETMEM_WRAPPERS matches by the same names: a wrapper in a symlinked plugin is looked through to the tagged program" {
	local v d
	for v in "${VARIANTS[@]}"; do
		d=$RT_BIN/$v
		start_paused SECRETMEM_LIBS=names_host SECRETMEM_WRAPPERS=keyplug-1.2.so:nk_alloc \
			"$d/bin/names_host" pause wrap "$d/lib/keyplug.so"
		assert_lives_secret key
		stop_paused
		# control: the wrapper named in another library is not looked through, and
		# its caller, the plugin, is not tagged
		start_paused SECRETMEM_LIBS=names_host SECRETMEM_WRAPPERS=keyplug-1.3.so:nk_alloc \
			"$d/bin/names_host" pause wrap "$d/lib/keyplug.so"
		assert_lives_ordinary key
		stop_paused
	done
}

@test "names: the main program started through a symbolically linked directory (./linkbin/names_host) matches the path through the link, and its canonical path" {
	local v d
	for v in "${VARIANTS[@]}"; do
		d=$RT_BIN/$v
		cd "$d"
		nm_secret "$d/linkbin/names_host" ./linkbin/names_host self
		nm_secret "$d/bin/names_host" ./linkbin/names_host self
		nm_secret "$d/linkbin/names_host" linkbin/names_host self
		nm_ordinary "$d/linkbin/other" ./linkbin/names_host self
		# control: started by its canonical path, the path through the link is no name of it
		nm_ordinary "$d/linkbin/names_host" "$d/bin/names_host" self
	done
}

@test "names: the rule secretmem-audit proposes for a symlinked plugin (its file's name, from /proc/PID/maps) passes its own --verify" {
	local v d
	for v in "${VARIANTS[@]}"; do
		d=$RT_BIN/$v
		run --separate-stderr -0 "$abs_top_builddir/tools/secretmem-audit" --hex "$KEYHEX" --verify -- \
			"$d/bin/names_host" dlopen "$d/lib/keyplug.so" "$BATS_FILE_TMPDIR/key.bin"
		assert_line --regexp "^    nk_load\+0x[0-9a-f]+ \($d/lib/keyplug-1\.2\.so\)  <- call site\$"
		assert_line --regexp '^verify: OK: no readable copy in 1 process\(es\)'
		assert_equal "${lines[-1]}" "rule: secretmem-run --lib keyplug-1.2.so --"
	done
}
