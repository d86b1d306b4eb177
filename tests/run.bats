#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# secretmem-run as programs are really run, checked by what the process did:
#   - a set-user-ID, set-group-ID or file-capability command (the loader would
#     leave the shim out) is refused; --setid-ok runs it with the shim loaded by
#     name from a system directory, set-user-ID, where only annotations work;
#   - SECRETMEM_* variables of the caller reach the command, flags win;
#   - every example of README.md and the man pages, extracted mechanically by
#     tests/run-examples.py, is run as written (a new example without a check here
#     fails the suite) against the fixture programs of tests/run_docprog.c and
#     tests/run_keyd.cc, each with a control that shows the check can fail.

load helpers
load routing-helpers

setup_file() {
	rt_build header_prog annotated_prog
	# The examples' programs, built by make (Makefile.am) as distributions build
	# (-O2 -g, tail calls and inlining allowed), each from two translation units.
	DOC=$BATS_FILE_TMPDIR/doc
	export DOC
	mkdir -p "$DOC"
	local p
	for p in libkeys.so vault agent server keyd; do
		[[ -f $abs_top_builddir/tests/run/doc/$p ]] ||
			{ echo "tests/run/doc/$p is missing: build the test programs first (make check)" >&2; return 1; }
		cp -p "$abs_top_builddir/tests/run/doc/$p" "$DOC/$p" || return 1
	done
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DOC/key.pem" -out "$DOC/cert.pem" \
		-days 1 -subj /CN=run.bats >/dev/null 2>&1
	head -c 32 /dev/urandom >"$DOC/secret.bin"
	cp "$DOC/secret.bin" "$DOC/prime.bin"
	# The commands by their bare names, as the documentation uses them.
	mkdir -p "$DOC/path"
	ln -s "$abs_top_builddir/tools/secretmem-run" "$DOC/path/secretmem-run"
	ln -s "$abs_top_builddir/tools/secretmem-audit" "$DOC/path/secretmem-audit"
	ln -s "$abs_top_builddir/tools/secretmem-inspect" "$DOC/path/secretmem-inspect"
	python3 "$RT_SRC/run-examples.py" "$abs_top_srcdir" "$BATS_FILE_TMPDIR/examples" >/dev/null
}

setup() {
	sm_setup
	RUN=$abs_top_builddir/tools/secretmem-run
	SHIM_REAL=$(readlink -f "$SHIM")
	BG_PID=
}

teardown() {
	[[ -n $BG_PID ]] && kill "$BG_PID" 2>/dev/null && wait "$BG_PID" 2>/dev/null
	[[ -n ${SETID_DIR:-} && $SETID_DIR == /tmp/secretmem-run.* ]] && rm -rf "$SETID_DIR"
	[[ -n ${SYS_LIB:-} ]] && rm -f "$SYS_LIB"
	return 0
}

# ==== 1. set-user-ID, set-group-ID and file-capability commands ====

# A directory nobody can reach (the Bats temporary directories are root's).
setid_dir() {
	SETID_DIR=$(mktemp -d /tmp/secretmem-run.XXXXXX)
	chmod 755 "$SETID_DIR"
}

as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}

@test "setid: ssh-agent (setgid _ssh), found through PATH, is refused with exit 126 and what works" {
	local agent
	agent=$(command -v ssh-agent) || skip "ssh-agent is not installed"
	[[ -g $agent ]] || skip "$agent is not set-group-ID here"
	run --separate-stderr -126 as_nobody "$RUN" --lib '*' -- ssh-agent -D -a /nonexistent/sock
	assert_output ""
	[[ $stderr == "secretmem-run: $agent is set-group-ID (group "*"): the loader would leave libsecretmem-preload out of it and nothing would be secret."* ]] ||
		fail "stderr: $stderr"
	[[ $stderr == *"run a copy without that bit"*"--setid-ok"* ]] || fail "stderr: $stderr"
	# the control: a copy without the bit runs, with the shim really in it
	setid_dir
	cp "$agent" "$SETID_DIR/ssh-agent"
	chmod 755 "$SETID_DIR/ssh-agent"
	mkdir "$SETID_DIR/sock"
	chown nobody "$SETID_DIR/sock"
	as_nobody env PATH="$SETID_DIR:$PATH" "$RUN" --lib '*' -- ssh-agent -D -a "$SETID_DIR/sock/s" \
		>/dev/null 2>&1 3>&- &
	BG_PID=$!
	local pid='' i
	for i in $(seq 100); do
		pid=$(pgrep -n -f "^ssh-agent -D -a $SETID_DIR/sock/s") && grep -q /secretmem "/proc/$pid/maps" && break
		sleep 0.05
	done
	[[ -n $pid ]] || fail "the copy of ssh-agent did not start"
	grep -q "$SHIM_REAL" "/proc/$pid/maps" || fail "the shim is not in the copy's maps"
	grep -q ' /secretmem' "/proc/$pid/maps" || fail "the copy holds no secret memory under --lib '*'"
	kill "$pid"
}

@test "setid: setuid and file-capability commands are refused (run as nobody); as root, file capabilities are not" {
	setid_dir
	cp "$RT_BIN/header_prog" "$SETID_DIR/suid"
	chmod 4755 "$SETID_DIR/suid"
	run --separate-stderr -126 as_nobody "$RUN" --site f "$SETID_DIR/suid"
	[[ $stderr == "secretmem-run: $SETID_DIR/suid is set-user-ID (owner root):"* ]] || fail "stderr: $stderr"
	# through a symlink and a relative PATH entry, as exec finds it
	ln -s suid "$SETID_DIR/link"
	cd "$SETID_DIR"
	run --separate-stderr -126 as_nobody env PATH=.:/usr/bin:/bin "$RUN" link
	[[ $stderr == *"is set-user-ID (owner root)"* ]] || fail "stderr: $stderr"
	# root runs its own setuid-root program with ids it has already: not refused,
	# and the shim is really there
	run --separate-stderr -0 "$RUN" "$SETID_DIR/suid"
	assert_line active=1
	command -v setcap >/dev/null || skip "setcap (libcap2-bin) is not available"
	cp "$RT_BIN/header_prog" "$SETID_DIR/cap"
	setcap cap_ipc_lock+ep "$SETID_DIR/cap"
	run --separate-stderr -126 as_nobody "$RUN" "$SETID_DIR/cap"
	[[ $stderr == *"$SETID_DIR/cap is given file capabilities (cap_ipc_lock=ep)"* ]] || fail "stderr: $stderr"
	run --separate-stderr -0 "$RUN" "$SETID_DIR/cap"
	assert_line active=1
	# the control: a plain copy run by nobody gets the shim
	cp "$RT_BIN/header_prog" "$SETID_DIR/plain"
	run --separate-stderr -0 as_nobody "$RUN" "$SETID_DIR/plain"
	assert_line active=1
}

@test "setid: --setid-ok loads the installed set-user-ID library by name; annotations work, rules are refused" {
	local dir
	dir=$(/lib64/ld-linux-x86-64.so.2 --list-diagnostics 2>/dev/null |
		sed -n 's/^path\.system_dirs\[0x1\]="\(.*\)\/"$/\1/p')
	[[ -d $dir ]] || skip "no second system library directory reported by ld.so"
	setid_dir
	cp "$RT_BIN/annotated_prog" "$SETID_DIR/annotated"
	chmod 4755 "$SETID_DIR/annotated"
	# not installed (or not set-user-ID): refused, saying how to install it
	if [[ ! -e $dir/libsecretmem-preload.so ]]; then
		run --separate-stderr -126 as_nobody "$RUN" --setid-ok "$SETID_DIR/annotated"
		[[ $stderr == *"--setid-ok needs libsecretmem-preload.so installed set-user-ID, owned by root, in a system library directory (e.g. install -o root -m 4755 "* ]] ||
			fail "stderr: $stderr"
		SYS_LIB=$dir/libsecretmem-preload.so
		install -o root -m 4755 "$SHIM" "$SYS_LIB"
	elif [[ ! -u $dir/libsecretmem-preload.so ]]; then
		skip "$dir/libsecretmem-preload.so is installed without the set-user-ID bit"
	fi
	run --separate-stderr -0 as_nobody "$RUN" --setid-ok --print-env "$SETID_DIR/annotated"
	assert_output "LD_PRELOAD=libsecretmem-preload.so"$'\nLD_BIND_NOW=1'
	run --separate-stderr -0 as_nobody "$RUN" --setid-ok "$SETID_DIR/annotated"
	assert_line --regexp '^annotated_malloc secret=1 '
	assert_line active=1
	assert_equal "$stderr" ""
	# the control: without --setid-ok it is refused; run directly, the shim is absent
	run --separate-stderr -126 as_nobody "$RUN" "$SETID_DIR/annotated"
	run --separate-stderr -0 as_nobody env LD_PRELOAD="$SHIM_REAL" "$SETID_DIR/annotated"
	assert_line --regexp '^annotated_malloc secret=0 '
	# rules cannot reach it: refused, from a flag or inherited
	run --separate-stderr -126 as_nobody "$RUN" --setid-ok --site main "$SETID_DIR/annotated"
	[[ $stderr == *"it ignores every SECRETMEM_* variable (SECRETMEM_SITES); only secretmem.h annotations"* ]] ||
		fail "stderr: $stderr"
	run --separate-stderr -126 as_nobody env SECRETMEM_MODE=off "$RUN" --setid-ok "$SETID_DIR/annotated"
	[[ $stderr == *"(SECRETMEM_MODE)"* ]] || fail "stderr: $stderr"
	# and a non-setid command under --setid-ok runs as usual, by path
	run --separate-stderr -0 "$RUN" --setid-ok --print-env /bin/true
	assert_output "LD_PRELOAD=$SHIM_REAL"$'\nLD_BIND_NOW=1'
}

@test "setid: the library in a secure-execution program with SECRETMEM_* set says the rules are ignored" {
	local dir
	dir=$(/lib64/ld-linux-x86-64.so.2 --list-diagnostics 2>/dev/null |
		sed -n 's/^path\.system_dirs\[0x1\]="\(.*\)\/"$/\1/p')
	[[ -d $dir && ! -e $dir/libsecretmem-preload.so ]] || skip "cannot install a test copy in $dir"
	SYS_LIB=$dir/libsecretmem-preload.so
	install -o root -m 4755 "$SHIM" "$SYS_LIB"
	setid_dir
	cp "$RT_BIN/header_prog" "$SETID_DIR/suid"
	chmod 4755 "$SETID_DIR/suid"
	run --separate-stderr -0 as_nobody env LD_PRELOAD=libsecretmem-preload.so \
		SECRETMEM_LIBS='*' "$SETID_DIR/suid"
	assert_line active=1
	assert_equal "$stderr" "${SM_PREFIX}this is a set-user-ID, set-group-ID or file-capability program: every SECRETMEM_* variable is ignored and no rule makes anything secret; only secretmem.h annotations in its code do"
	# the control: no variable, nothing said
	run --separate-stderr -0 as_nobody env LD_PRELOAD=libsecretmem-preload.so "$SETID_DIR/suid"
	assert_equal "$stderr" ""
}

# ==== 2. the caller's SECRETMEM_* variables ====

@test "static: a statically linked command (static and static-pie) gets a warning and still runs; a dynamic one and the loader run as a program get none" {
	printf 'int main(void){return 7;}\n' >"$BATS_TEST_TMPDIR/p.c"
	gcc -O2 -static -o "$BATS_TEST_TMPDIR/st" "$BATS_TEST_TMPDIR/p.c" ||
		skip "no static libc (libc6-dev's libc.a)"
	gcc -O2 -static-pie -o "$BATS_TEST_TMPDIR/spie" "$BATS_TEST_TMPDIR/p.c"
	gcc -O2 -o "$BATS_TEST_TMPDIR/dyn" "$BATS_TEST_TMPDIR/p.c"
	local b
	for b in st spie; do
		run -7 --separate-stderr "$RUN" --lib dyn -- "$BATS_TEST_TMPDIR/$b"
		[[ $stderr == *"secretmem-run: warning: $BATS_TEST_TMPDIR/$b is statically linked: no dynamic loader runs in it, so libsecretmem-preload is not loaded into it and none of its memory is secret"* ]] ||
			fail "$b: no warning: $stderr"
	done
	run -7 --separate-stderr "$RUN" --lib dyn -- "$BATS_TEST_TMPDIR/dyn"
	[[ $stderr != *"statically linked"* ]] || fail "dynamic: $stderr"
	local ldso
	ldso=$(ls /lib64/ld-linux-*.so.* 2>/dev/null | head -1)
	[[ -n $ldso ]] || return 0
	run -7 --separate-stderr "$RUN" --lib dyn -- "$ldso" "$BATS_TEST_TMPDIR/dyn"
	[[ $stderr != *"statically linked"* ]] || fail "ld.so: $stderr"
}

@test "environment: inherited SECRETMEM_* variables reach the command; a flag wins over one" {
	run --separate-stderr -0 env SECRETMEM_SITES=load_key SECRETMEM_DEPTH=4 SECRETMEM_FOO=x \
		"$RUN" --depth 2 --print-env
	assert_output "LD_PRELOAD=$SHIM_REAL
LD_BIND_NOW=1
SECRETMEM_SITES=load_key
SECRETMEM_DEPTH=2
SECRETMEM_FOO=x"
	# the command's real environment
	run --separate-stderr -0 env SECRETMEM_SITES=load_key SECRETMEM_DEPTH=4 "$RUN" --depth 2 env
	assert_line SECRETMEM_SITES=load_key
	assert_line SECRETMEM_DEPTH=2
	# and what the process did: the inherited rule made its block secret
	run --separate-stderr -0 env SECRETMEM_SITES=load_key "$RUN" -- "$DOC/agent"
	assert_line 'key secret=1'
	run --separate-stderr -0 env SECRETMEM_SITES=load_key "$RUN" --site nothing_here -- "$DOC/agent"
	assert_line 'key secret=0'
	# an inherited bad value is the library's to refuse, as without the wrapper
	run --separate-stderr -78 env SECRETMEM_LIBS= "$RUN" /bin/true
	assert_equal "$stderr" "${SM_PREFIX}SECRETMEM_LIBS is set but empty; unset it or give a value"
}

@test "environment: SECRETMEM_LIBS='*' SECRETMEM_STATS=1 secretmem-run -- echo hi prints the report" {
	# coreutils closes its standard error at exit, before the report is written
	run --separate-stderr -0 env SECRETMEM_LIBS='*' SECRETMEM_STATS=1 "$RUN" -- echo hi
	assert_output hi
	[[ $stderr == "${SM_PREFIX}statistics of process "* ]] || fail "stderr: $stderr"
	[[ $stderr =~ secret\ allocations\ [1-9] ]] || fail "no secret allocation reported: $stderr"
	# the control: with no SECRETMEM_STATS, no report
	run --separate-stderr -0 env SECRETMEM_LIBS='*' "$RUN" -- echo hi
	assert_equal "$stderr" ""
	# a program that puts another file at the kept copy's number gets no report in it
	run --separate-stderr -0 env SECRETMEM_LIBS='*' SECRETMEM_STATS=1 "$RUN" -- \
		python3 -c "import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)
os.dup2(fd, 1000); os.write(1000, b'x')" "$BATS_TEST_TMPDIR/f"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/f")" x
	[[ $stderr == "${SM_PREFIX}statistics of process "* ]] || fail "stderr: $stderr"
}

# ==== every example of the README and the man pages ====

# ex CMD: runs the example's command line as a user would type it, in the examples'
# directory, with the commands on PATH and the documented library path meaning the
# built one. Sets status, output, stderr.
ex() {
	local cmd=$1
	cmd=${cmd//\/usr\/local\/lib\/libsecretmem-preload.so/$SHIM_REAL}
	cmd=${cmd//LD_PRELOAD=.../LD_PRELOAD=$SHIM_REAL}
	[[ -n $BG_PID ]] && cmd=$(sed -E "s/(^| )(PID|4242)( |$)/\1$BG_PID\3/g" <<<"$cmd")
	EX_CMD=$cmd
	run --separate-stderr bash -c "cd '$DOC' && PATH='$DOC/path':\$PATH && $cmd"
}

# bg CMD: starts the command of an example in the background (its programs pause
# with their blocks live) and waits for READY; BG_PID is the program's process.
bg() {
	BG_N=$((${BG_N:-0} + 1))
	local cmd=$1 out=$BATS_TEST_TMPDIR/bg.$BG_N.out
	: >"$out"
	cmd=${cmd//\/usr\/local\/lib\/libsecretmem-preload.so/$SHIM_REAL}
	cmd=${cmd//LD_PRELOAD=.../LD_PRELOAD=$SHIM_REAL}
	cmd=$(sed -E 's/^(([A-Za-z_][A-Za-z0-9_]*=[^ ]* )*)/\1exec /' <<<"$cmd")
	bash -c "cd '$DOC' && export PATH='$DOC/path':\$PATH DOCPROG_PAUSE=1 && $cmd" \
		>"$out" 2>"$out.err" </dev/null 3>&- &
	BG_PID=$!
	local deadline=$((SECONDS + 30))
	until grep -q '^READY$' "$out" 2>/dev/null || ((SECONDS > deadline)); do
		kill -0 "$BG_PID" 2>/dev/null || break
		sleep 0.05
	done
	if ! grep -q '^READY$' "$out"; then
		local st=running
		kill -0 "$BG_PID" 2>/dev/null || { wait "$BG_PID" && st=0 || st=$?; }
		fail "no READY from: $cmd (status: $st): $(cat "$out" "$out.err")"
	fi
	BG_OUT=$(cat "$out")
}

bg_stop() {
	kill "$BG_PID" 2>/dev/null || true
	wait "$BG_PID" 2>/dev/null || true
	BG_PID=
}

# s_server from an example on a free port: the server holds secret memory with
# pages in it (libcrypto's allocations, the key among them); without the shim part
# of the command it holds none.
ex_s_server() {
	local cmd=$2 port
	port=$((20000 + RANDOM % 20000))
	if [[ $cmd == *"-accept 4433"* ]]; then
		cmd=${cmd/-accept 4433/-accept 127.0.0.1:$port}
	else
		cmd="$cmd -accept 127.0.0.1:$port"
	fi
	cmd="$cmd -quiet"
	cmd=${cmd//\/usr\/local\/lib\/libsecretmem-preload.so/$SHIM_REAL}
	cmd=$(sed -E 's/^(([A-Za-z_][A-Za-z0-9_]*=[^ ]* )*)/\1exec /' <<<"$cmd")
	bash -c "cd '$DOC' && export PATH='$DOC/path':\$PATH && $cmd" >/dev/null 2>&1 </dev/null 3>&- &
	BG_PID=$!
	local i
	for i in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	grep -q ' /secretmem' "/proc/$BG_PID/maps" || fail "$1: the server holds no secret memory"
	run -0 "$abs_top_builddir/tools/secretmem-inspect" "$BG_PID"
	[[ $output =~ secret\ resident:\ +[1-9][0-9]*\ KiB ]] || fail "$1: $output"
	bg_stop
	# the control
	local plain=${2#*libcrypto.so\*\' }
	plain=${plain#-- }
	plain=${plain/ -accept 4433/}
	[[ $plain == openssl\ s_server* ]] || fail "cannot take the shim off: $2"
	bash -c "cd '$DOC' && exec $plain -accept 127.0.0.1:$((port + 1)) -quiet" \
		>/dev/null 2>&1 </dev/null 3>&- &
	BG_PID=$!
	for i in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null && break
		sleep 0.1
	done
	! grep -q ' /secretmem' "/proc/$BG_PID/maps" || fail "control: secret memory without the shim"
	bg_stop
}

# example_check KIND TEXT: the function of this file that checks the example, or
# nothing for an example it does not know. Only a choice: the check runs outside
# any condition, so that each assertion in it stops the test.
example_check() {
	local kind=$1 text=$2
	if [[ $kind == c ]]; then
		case $text in
		*"int"*"main(void)"*) echo ex_c_program ;;
		'#include <secretmem.h>'$'\n''SECRETMEM_ANNOTATE_LIBRARY;'*) echo ex_c_fragment ;;
		esac
		return 0
	fi
	case $text in
	"scripts/demo "* | "scripts/check "* | "autoreconf -fi "* | "./configure && make && make install")
		echo ex_build ;;
	*"SECRETMEM_LIBS='libcrypto.so*' openssl s_server "* | "secretmem-run --lib 'libcrypto.so*' -- openssl s_server "*)
		echo ex_s_server ;;
	"SECRETMEM_SITES=read_password secretmem-run -- ./vault unlock") echo ex_vault ;;
	"SECRETMEM_SITES=_ZN8KeyStore4loadEv SECRETMEM_DEPTH=4 secretmem-run -- ./keyd") echo ex_keyd ;;
	'secretmem-inspect --find "$(xxd -p -c0 secret.bin)" '* | \
		"secretmem-inspect --find \"\$(xxd -p prime.bin | tr -d '\\n')\" 4242")
		echo ex_find ;;
	"secretmem-inspect 4242" | "secretmem-inspect PID # its secret mappings") echo ex_inspect ;;
	"secretmem-audit "*) echo ex_audit ;;
	*"secretmem-run "*" --print-env") echo ex_print_env ;;
	"SECRETMEM_SITES=load_key,libkeys.so:unwrap LD_PRELOAD=... ./agent") echo ex_agent ;;
	"SECRETMEM_SITES=load_private_key SECRETMEM_DEPTH=4 LD_PRELOAD=... ./server") echo ex_server_depth ;;
	"secretmem-run --lib 'libcrypto.so*' --stats -- ./server # report at exit") echo ex_server_stats ;;
	"install -o root -m 4755 libsecretmem-preload.so /usr/lib/x86_64-linux-gnu/") echo ex_install_setuid ;;
	"[Service]" | "Environment=LD_PRELOAD="* | "Environment=SECRETMEM_"* | "LimitMEMLOCK="*)
		echo ex_systemd ;;
	esac
}

# The systemd drop-in of the man page, a line an example: each is a line of
# docs/systemd/secretmem.conf, which tests/limits.bats checks with
# systemd-analyze verify.
ex_systemd() {
	local file=$abs_top_srcdir/docs/systemd/secretmem.conf
	grep -qxF -- "$2" "$file" || fail "$1: '$2' is not in $file (which limits.bats verifies)"
}

# Each ex_* WHERE TEXT WANT runs one example and checks what it did, with a control.

# secretmem-audit on s_server (a free port for 4433): the audited run is the
# control (copies in ordinary memory), the verify run the check.
ex_audit() {
	local port
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	ex "${2//127.0.0.1:4433/127.0.0.1:$port}"
	assert_success
	assert_line --regexp '^copy 1: process [0-9]+ \(openssl\), live block '
	assert_line --regexp '^verify: OK: no readable copy in 1 process\(es\)'
	assert_equal "${lines[-1]}" "rule: secretmem-run --lib 'libcrypto.so*' --"
}

# A C example is compiled here, on purpose: it is what a reader of the
# documentation would type and build.
ex_c_program() {
	printf '%s' "$2" >"$BATS_TEST_TMPDIR/ex.c"
	gcc -O2 -g "-I$abs_top_srcdir/include" "$BATS_TEST_TMPDIR/ex.c" -o "$BATS_TEST_TMPDIR/ex" ||
		fail "$1: does not compile"
	run -0 env LD_PRELOAD="$SHIM" "$BATS_TEST_TMPDIR/ex" <<<"hunter2"
	assert_output "secret: yes"
	run -0 "$BATS_TEST_TMPDIR/ex" <<<"hunter2"
	assert_output "secret: no"
}

# A fragment (getpass_copy is the reader's): the same calls are the complete
# program of secretmem.h(3), run above, and annotated_prog.
ex_c_fragment() {
	run -0 env LD_PRELOAD="$SHIM" "$RT_BIN/annotated_prog"
	assert_line --regexp '^annotated_malloc secret=1 '
	run -0 "$RT_BIN/annotated_prog"
	assert_line --regexp '^annotated_malloc secret=0 '
}

# The build and the suite themselves; scripts/demo has its own test below.
ex_build() { :; }

ex_vault() {
	ex "$2 <<<hunter2-password"
	assert_success
	assert_output 'password secret=1'
	ex "LD_PRELOAD=$SHIM_REAL ./vault unlock <<<hunter2-password"
	assert_output 'password secret=0'
}

ex_keyd() {
	bg "$2"
	assert_equal "$BG_OUT" $'key secret=1\nraw secret=1\nREADY'
	bg_stop
	bg "secretmem-run -- ./keyd"
	assert_equal "$BG_OUT" $'key secret=0\nraw secret=0\nREADY'
	bg_stop
}

# Root cannot read the key of keyd under its rule; without the rule it can.
ex_find() {
	bg "SECRETMEM_SITES=_ZN8KeyStore4loadEv SECRETMEM_DEPTH=4 secretmem-run -- ./keyd"
	assert_equal "$BG_OUT" $'key secret=1\nraw secret=1\nREADY'
	ex "$2"
	assert_success
	[[ $output =~ search\ results:\ +[0-9a-f]+:\ 0($|$'\n') ]] || fail "$1: $EX_CMD: $output"
	bg_stop
	bg "./keyd"
	ex "$2"
	((status == 3)) || fail "$1: the control found nothing: $output"
	bg_stop
}

ex_inspect() {
	bg "secretmem-run --lib 'libcrypto.so*' -- ./server"
	ex "$2"
	assert_success
	assert_line "process:           $BG_PID"
	assert_line "shim loaded:       yes ($SHIM_REAL)"
	assert_line --regexp '^secret mappings: +[1-9]'
	assert_line --regexp '^secret resident: +[1-9][0-9]* KiB'
	# every line the page shows is there, with its label
	local label
	while IFS= read -r label; do
		case $label in
		'') ;;
		'-- '*) # a heading: its words, without the example's pid
			assert_line --partial "${label%%(*}" ;;
		*) assert_line --regexp "^${label%%:*}: " ;;
		esac
	done <<<"$3"
	bg_stop
	bg "./server"
	ex "$2"
	assert_line 'shim loaded:       no'
	assert_line 'secret mappings:   0'
	bg_stop
}

ex_print_env() {
	ex "$2"
	assert_success
	[[ -n $3 ]] || fail "$1: the page shows no output for $2"
	assert_output "${3//\/usr\/local\/lib\/libsecretmem-preload.so/$SHIM_REAL}"
}

ex_agent() {
	ex "$2"
	assert_success
	assert_output $'key secret=1\nunwrapped secret=1'
	ex "LD_PRELOAD=... ./agent"
	assert_output $'key secret=0\nunwrapped secret=0'
}

ex_server_depth() {
	ex "$2"
	assert_success
	assert_output $'pem read\nprivate_key secret=1'
	ex "LD_PRELOAD=... ./server"
	assert_output $'pem read\nprivate_key secret=0'
}

ex_server_stats() {
	ex "$2"
	assert_success
	[[ $stderr == "${SM_PREFIX}statistics of process "* ]] || fail "$1: no report: $stderr"
	[[ $stderr =~ secret\ allocations\ [1-9] ]] || fail "$1: $stderr"
	[[ $stderr == *libcrypto.so* ]] || fail "$1: no libcrypto call site: $stderr"
	ex "secretmem-run --stats -- ./server"
	[[ $stderr =~ secret\ allocations\ 0, ]] || fail "$1: control: $stderr"
}

# As written, with the built library; then a setuid program run by nobody under
# --setid-ok gets it, as the page says; removed, it does not.
ex_install_setuid() {
	SYS_LIB=/usr/lib/x86_64-linux-gnu/libsecretmem-preload.so
	if [[ ! -d ${SYS_LIB%/*} || -e $SYS_LIB ]]; then
		SYS_LIB=
		echo "# $1: not run: no free ${SYS_LIB%/*} for a test copy" >&3
		return 0
	fi
	ex "${2/libsecretmem-preload.so \//$SHIM_REAL /}"
	assert_success
	[[ -u $SYS_LIB ]] || fail "$1: not set-user-ID"
	setid_dir
	cp "$RT_BIN/annotated_prog" "$SETID_DIR/annotated"
	chmod 4755 "$SETID_DIR/annotated"
	run -0 as_nobody "$RUN" --setid-ok "$SETID_DIR/annotated"
	assert_line --regexp '^annotated_malloc secret=1 '
	rm -f "$SYS_LIB"
	run -0 as_nobody env LD_PRELOAD=libsecretmem-preload.so "$SETID_DIR/annotated"
	assert_line --regexp '^annotated_malloc secret=0 '
}

@test "examples: every example of README.md and the man pages runs as written and does what it says" {
	local dir=$BATS_FILE_TMPDIR/examples n=0 unknown=() f b h
	for f in "$dir"/*.where; do
		b=${f%.where}
		h=$(example_check "$(cat "$b.kind")" "$(cat "$b.text")")
		[[ -n $h ]] || unknown+=("$(cat "$f"): $(cat "$b.text")")
	done
	((${#unknown[@]} == 0)) || fail "examples with no check in tests/run.bats:$(printf '\n  %s' "${unknown[@]}")"
	for f in "$dir"/*.where; do
		b=${f%.where}
		n=$((n + 1))
		h=$(example_check "$(cat "$b.kind")" "$(cat "$b.text")")
		echo "# $(cat "$f"): $h" >&3
		"$h" "$(cat "$f")" "$(cat "$b.text")" "$(cat "$b.out")"
	done
	((n >= 22)) || fail "found only $n examples"
}

# ==== 7. the tools and the demo ====

@test "inspect: the unreadable mappings it counts are exactly the secret ones (the kernel's [vvar*] pages are not)" {
	bg "SECRETMEM_SITES=_ZN8KeyStore4loadEv SECRETMEM_DEPTH=4 secretmem-run -- ./keyd"
	local nsecret
	nsecret=$(grep -c ' /secretmem' "/proc/$BG_PID/maps")
	((nsecret >= 1)) || fail "keyd holds no secret mapping"
	run --separate-stderr -0 "$abs_top_builddir/tools/secretmem-inspect" --find "$(head -c 16 /dev/urandom | xxd -p)" "$BG_PID"
	[[ $output =~ \(([0-9]+)\ unreadable\) ]] || fail "no scan line: $output"
	assert_equal "${BASH_REMATCH[1]}" "$nsecret"
	# the control: the kernel's pages that root cannot read either are there
	local line start n=0
	while read -r line; do
		start=$((16#${line%%-*}))
		dd if="/proc/$BG_PID/mem" bs=4096 skip=$((start / 4096)) count=1 status=none \
			of=/dev/null 2>/dev/null || n=$((n + 1))
	done < <(grep -E '\[(vvar|vvar_vclock|vsyscall)\]' "/proc/$BG_PID/maps" | grep '^[0-9a-f]*-[0-9a-f]* r')
	((n >= 1)) || skip "no unreadable kernel page in this process (older kernel)"
}

@test "demo: scripts/demo exits 0 with PROTECTED, says where the commands are and what is unreadable, no build noise" {
	run --separate-stderr timeout 300 "$abs_top_srcdir/scripts/demo" --no-install
	assert_success
	assert_equal "$stderr" ""
	assert_line --regexp '^PROTECTED: '
	# the demo names its own tree's directory as cd and pwd give it ("a/b/../.." in
	# a distcheck build is the same place)
	local top
	top=$(cd "$abs_top_srcdir" && pwd)
	assert_line "built, not installed: $top/tools/secretmem-run and $top/tools/secretmem-inspect"
	[[ -x $top/tools/secretmem-run && -x $top/tools/secretmem-inspect ]]
	# every scan explains its unreadable mappings, and with the shim they are the
	# secret ones
	assert_line --regexp '^  the ([1-9][0-9]*) unreadable mappings are the \1 secret ones: root gets EIO there$'
	assert_line '  no mapping refused root: all of the server'"'"'s memory was read'
	refute_line --partial 'autoreconf'
	run -2 "$abs_top_srcdir/scripts/demo" --bogus
}

# ==== 3. reports of programs behind wrappers ====

@test "stats: --stats-if secret: in a wrapper chain with %p only the process that held secrets writes a file" {
	local d=$BATS_TEST_TMPDIR/reports
	mkdir -p "$d"
	# bash forks the agent (not exec: a command follows), as wrappers do; dash
	# would not do for the control, it leaves with _exit and never reports
	run --separate-stderr -0 "$RUN" --stats="$d/s.%p.json" --stats-if secret --site load_key -- \
		bash -c "'$DOC/agent'; exit 0"
	assert_line 'key secret=1'
	local files
	files=$(ls "$d")
	(($(wc -l <<<"$files") == 1)) || fail "expected one report, got: $files"
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["allocs"] >= 1, d' "$d/$files"
	# the control: without it the shell writes its own (empty) report too
	rm -f "$d"/*
	run --separate-stderr -0 "$RUN" --stats="$d/s.%p.json" --site load_key -- bash -c "'$DOC/agent'; exit 0"
	(($(ls "$d" | wc -l) == 2)) || fail "expected two reports, got: $(ls "$d")"
	# on stderr the same: only the agent reports
	run --separate-stderr -0 env SECRETMEM_STATS_IF=secret "$RUN" --stats --site load_key -- \
		bash -c "'$DOC/agent'; exit 0"
	(($(grep -c "statistics of process" <<<"$stderr") == 1)) || fail "stderr: $stderr"
	run --separate-stderr -2 "$RUN" --stats-if sometimes true
	[[ $stderr == 'secretmem-run: --stats-if "sometimes" is not valid: expected always, secret' ]] || fail "stderr: $stderr"
	run --separate-stderr -78 env SECRETMEM_STATS_IF=sometimes "$RUN" true
	[[ $stderr == "${SM_PREFIX}SECRETMEM_STATS_IF=\"sometimes\" is not valid: expected always or secret" ]] || fail "stderr: $stderr"
}

# ==== the examples' programs as other builds make them ====

@test "examples under -fno-plt and clang: the site rule still finds read_password; under -O3 -flto it is inlined into main, as documented" {
	local variant dir
	[[ -n ${CLANG:-} ]] || skip "clang is not installed"
	# built by make (Makefile.am): gcc -O2 -g -fno-plt, clang -O2 -g, gcc -O3 -flto
	# (no -g), clang -O3 -flto
	for variant in noplt clang lto clang_lto; do
		dir=$BATS_TEST_TMPDIR/$variant
		mkdir -p "$dir"
		cp -p "$abs_top_builddir/tests/run/$variant/vault" "$abs_top_builddir/tests/run/$variant/libkeys.so" \
			"$dir/" || fail "$variant: not built (make check)"
		run -0 --separate-stderr env SECRETMEM_SITES=read_password "$RUN" -- "$dir/vault" unlock <<<pw
		case $variant in
		*lto)
			# no read_password frame is left: the rule matches nothing, and the
			# shim says so (README, libsecretmem-preload(7)); naming the caller works
			assert_output 'password secret=0'
			[[ $stderr == *"SECRETMEM_SITES entry read_password matches no function"* ]] ||
				fail "$variant: no warning that the rule matches nothing: $stderr"
			# (built without -g: the shim also warns that inlined copies of main
			# cannot be found, which is true and harmless here)
			run -0 --separate-stderr env SECRETMEM_SITES=main "$RUN" -- "$dir/vault" unlock <<<pw
			assert_output 'password secret=1'
			;;
		*)
			assert_output 'password secret=1'
			run -0 "$RUN" -- "$dir/vault" unlock <<<pw
			assert_output 'password secret=0'
			;;
		esac
	done
}

# ==== 3. reports of servers stopped by a signal ====

@test "stats: a server stopped by SIGTERM leaves its report and still ends by SIGTERM (status 143)" {
	local f=$BATS_TEST_TMPDIR/keyd.%p.json
	bg "SECRETMEM_SITES=_ZN8KeyStore4loadEv SECRETMEM_DEPTH=4 secretmem-run --stats='$f' -- ./keyd"
	assert_equal "$BG_OUT" $'key secret=1\nraw secret=1\nREADY'
	local pid=$BG_PID st=0
	kill -TERM "$pid"
	wait "$pid" || st=$?
	BG_PID=
	assert_equal "$st" 143
	local report=${f/\%p/$pid}
	[[ -f $report ]] || fail "no report in $report: $(ls "$BATS_TEST_TMPDIR")"
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["signal"] == 15 and d["allocs"] >= 2 and d["mapped_bytes"] > 0, d' "$report"
	# on stderr, in text
	bg "SECRETMEM_SITES=_ZN8KeyStore4loadEv SECRETMEM_DEPTH=4 secretmem-run --stats -- ./keyd"
	pid=$BG_PID st=0
	# (SIGHUP: a background job of a script ignores SIGINT, with or without the shim)
	kill -HUP "$pid"
	wait "$pid" || st=$?
	BG_PID=
	assert_equal "$st" 129
	grep -q "^libsecretmem-preload: statistics of process $pid, ended by signal 1\$" "$BATS_TEST_TMPDIR/bg.$BG_N.out.err" ||
		fail "no report: $(cat "$BATS_TEST_TMPDIR/bg.$BG_N.out.err")"
	grep -Eq '^  secret allocations [1-9]' "$BATS_TEST_TMPDIR/bg.$BG_N.out.err"
	# the control: without --stats the same stop leaves nothing and the same status
	bg "SECRETMEM_SITES=_ZN8KeyStore4loadEv SECRETMEM_DEPTH=4 secretmem-run -- ./keyd"
	pid=$BG_PID st=0
	kill -TERM "$pid"
	wait "$pid" || st=$?
	BG_PID=
	assert_equal "$st" 143
	assert_equal "$(cat "$BATS_TEST_TMPDIR/bg.$BG_N.out.err")" ""
}

@test "stats: the program's view of its signals is what it is without the shim (Python's SIGINT, handlers, SIG_IGN)" {
	local py='import os, signal, sys
def show(x): print(str(x).split(" at 0x")[0])
show([signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)])
show(signal.signal(signal.SIGTERM, lambda *a: sys.exit(3)))
show(signal.signal(signal.SIGTERM, signal.SIG_DFL))
show(signal.getsignal(signal.SIGTERM))
show(signal.signal(signal.SIGTERM, lambda *a: sys.exit(3)))
os.kill(os.getpid(), signal.SIGTERM)'
	run --separate-stderr python3 -c "$py"
	local want=$output want_status=$status
	assert_equal "$want_status" 3
	run --separate-stderr "$RUN" --stats --lib '*' -- python3 -c "$py"
	assert_equal "$output" "$want"
	assert_equal "$status" "$want_status"
	# its own handler ended it: the ordinary report at exit
	[[ $stderr == "${SM_PREFIX}statistics of process "[0-9]*$'\n'* && $stderr != *"ended by signal"* ]] ||
		fail "stderr: $stderr"
	# KeyboardInterrupt, then Python ends itself by SIGINT: 130 both ways
	run --separate-stderr python3 -c 'import os, signal; os.kill(os.getpid(), signal.SIGINT)'
	assert_equal "$status" 130
	[[ $stderr == *KeyboardInterrupt* ]]
	run --separate-stderr "$RUN" --stats -- python3 -c 'import os, signal; os.kill(os.getpid(), signal.SIGINT)'
	assert_equal "$status" 130
	[[ $stderr == *KeyboardInterrupt*"${SM_PREFIX}statistics of process "*", ended by signal 2"* ]] ||
		fail "stderr: $stderr"
	# an ignored SIGTERM stays ignored, and is shown as without the shim
	py='import os, signal
print(signal.getsignal(signal.SIGTERM)); os.kill(os.getpid(), signal.SIGTERM); print("alive")'
	run --separate-stderr bash -c 'trap "" TERM; exec "$@"' - python3 -c "$py"
	assert_success
	want=$output
	assert_line alive
	run --separate-stderr bash -c 'trap "" TERM; exec "$@"' - "$RUN" --stats -- python3 -c "$py"
	assert_success
	assert_output "$want"
}
