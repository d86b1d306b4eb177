#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Transparency: with no routing rule (or SECRETMEM_MODE=off) a program under the
# shim behaves exactly as without it: same stdout, stderr and exit status. Each
# program runs with the shim alone (glibc behind it) and with jemalloc stacked behind
# it, compared with jemalloc alone; assert_transparent also proves every time that
# the shim really was in the process.

load helpers

PY=/usr/bin/python3
GIT_HEAD=a221d872415c2c82f008177a9f06cbc1dfd80675

setup() {
	sm_setup
	sm_need_programs "$ALLFUNCS" "$CXXPROG" "$THREADS"
}

teardown() {
	if [[ -n ${SERVER_PID:-} ]]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
}

# ---- the C and C++ test programs ----

@test "allfuncs: every interposed function keeps its contract, output as without the shim" {
	assert_transparent --ignore-stderr "$ALLFUNCS"
	assert_success
	assert_line "ok posix_memalign 65536"
	assert_line "ok posix_memalign 1048576"
	assert_line "ok calloc(SIZE_MAX/2, 3) overflows: NULL and ENOMEM"
	assert_line "PASSED: 0 failed"
	refute_line --partial "FAIL"
	# glibc 2.36 has no free_sized; the shim exports both C23 functions and they work.
	assert_equal "$base_stderr" \
		$'free_sized: absent, not called\nfree_aligned_sized: absent, not called'
	assert_equal "$stderr" $'free_sized: present, called\nfree_aligned_sized: present, called'
}

@test "allfuncs with jemalloc behind the shim: every call reaches jemalloc" {
	sm_need_jemalloc
	assert_shim_loaded --base "$JEMALLOC" "$ALLFUNCS" --jemalloc
	# Not compared with jemalloc alone: that crashes here, because glibc's
	# reallocarray and pvalloc (jemalloc has neither) then hand jemalloc's blocks
	# to glibc. The shim sends both to jemalloc instead.
	run --separate-stderr env LD_PRELOAD="$(sm_preload "$JEMALLOC")" "$ALLFUNCS" --jemalloc
	assert_success
	refute_line --partial "FAIL"
	local f
	for f in malloc calloc realloc "realloc(NULL)" reallocarray posix_memalign aligned_alloc \
		memalign valloc pvalloc; do
		assert_line "ok jemalloc serves $f and its free"
	done
	assert_line "ok jemalloc answers malloc_usable_size"
	assert_line "PASSED: 0 failed"
}

@test "allfuncs --jemalloc fails when jemalloc is not behind the shim (the proof can fail)" {
	run --separate-stderr env LD_PRELOAD="$SHIM" "$ALLFUNCS" --jemalloc
	assert_failure 1
	assert_line "FAIL jemalloc's mallctl is in the process"
}

@test "cxxprog: C++ new/delete, aligned new, containers, exceptions, threads" {
	assert_transparent "$CXXPROG"
	assert_success
	assert_line "ok new alignas(128) struct"
	assert_line "ok 100 exceptions thrown and caught across frames"
	assert_line "ok 4 threads filled the shared map"
	assert_line "PASSED: 0 failed"
}

@test "cxxprog with jemalloc behind the shim" {
	sm_need_jemalloc
	assert_transparent --base "$JEMALLOC" "$CXXPROG"
	assert_success
	assert_line "PASSED: 0 failed"
}

@test "threads: 4 threads, random sizes, checksums, cross-thread frees" {
	assert_transparent "$THREADS"
	assert_success
	assert_output --regexp \
		'^threads=4 iterations=20000 allocs=[0-9]+ .* frees=[1-9][0-9]* handed=[1-9][0-9]* errors=0$'
}

@test "threads with jemalloc behind the shim" {
	sm_need_jemalloc
	assert_transparent --base "$JEMALLOC" "$THREADS"
	assert_success
	assert_output --partial "errors=0"
}

# ---- python3 ----

write_python_workload() {
	cat >"$BATS_TEST_TMPDIR/work.py" <<'EOF'
import hashlib, json, re, threading
from concurrent.futures import ThreadPoolExecutor

# json: a nested document, dumped and loaded back
doc = {"users": [{"id": i, "name": "user%d" % i, "tags": ["t%d" % (i % 7), "x" * (i % 50)],
                  "score": i * 1.5, "active": i % 3 == 0, "nested": {"k": [i, None, True]}}
                 for i in range(5000)]}
text = json.dumps(doc, sort_keys=True)
back = json.loads(text)
assert back == doc
print("json", len(text), hashlib.sha256(text.encode()).hexdigest()[:16])

# re: find, substitute, split over a generated text
words = ["alpha%d" % (i * 7 % 1000) for i in range(20000)]
body = " ".join(words)
found = re.findall(r"alpha(\d*7)\b", body)
subbed = re.sub(r"(\d+)", lambda m: str(int(m.group(1)) * 2), body)
print("re", len(found), len(subbed), len(re.split(r"\s+", body)))

# a dict-heavy computation: word frequencies, an inverted index, nested grouping
freq = {}
for w in words:
    freq[w] = freq.get(w, 0) + 1
index = {}
for pos, w in enumerate(words):
    index.setdefault(w[-1], []).append(pos)
groups = {k: {w: c for w, c in freq.items() if w.endswith(k)} for k in "0123456789"}
print("dict", len(freq), sum(freq.values()), sorted((k, len(v)) for k, v in index.items())[:3],
      sum(len(g) for g in groups.values()))

# threads: hashing, and a shared dict under a lock
shared = {}
lock = threading.Lock()
def work(n):
    h = hashlib.sha256()
    local = []
    for i in range(2000):
        s = ("%d:%d:" % (n, i)) * 20
        h.update(s.encode())
        local.append(s)
    with lock:
        shared[n] = (h.hexdigest()[:12], len("".join(local)))
    return n
with ThreadPoolExecutor(max_workers=4) as ex:
    done = sorted(ex.map(work, range(16)))
print("threads", done == list(range(16)), sorted(shared.items())[:2], len(shared))

big = bytearray(32 << 20)
big[-1] = 7
print("bytearray", len(big), sum(big[-10:]))
EOF
}

# What the workload prints (computed once without any preload, and fixed here so
# that a broken baseline cannot hide a broken shim).
PY_EXPECTED="json 741773 8a0c71e5c1fa0a43
re 2000 188899 20000
dict 1000 20000 [('0', 2000), ('1', 2000), ('2', 2000)] 1000
threads True [(0, ('9a073c38c57e', 257800)), (1, ('18cecae865c7', 257800))] 16
bytearray 33554432 7"

@test "python3: json, re, threads and dicts as without the shim" {
	write_python_workload
	assert_transparent PYTHONHASHSEED=0 "$PY" "$BATS_TEST_TMPDIR/work.py"
	assert_success
	assert_output "$PY_EXPECTED"
}

@test "python3 with every object allocated by malloc (PYTHONMALLOC=malloc)" {
	write_python_workload
	assert_transparent PYTHONHASHSEED=0 PYTHONMALLOC=malloc "$PY" "$BATS_TEST_TMPDIR/work.py"
	assert_success
	assert_output "$PY_EXPECTED"
}

@test "python3 with jemalloc behind the shim" {
	sm_need_jemalloc
	write_python_workload
	assert_transparent --base "$JEMALLOC" PYTHONHASHSEED=0 PYTHONMALLOC=malloc \
		"$PY" "$BATS_TEST_TMPDIR/work.py"
	assert_success
	assert_output "$PY_EXPECTED"
}

@test "python3 under shim and jemalloc: its allocations reach jemalloc (mallctl)" {
	sm_need_jemalloc
	# A 64 MiB bytearray goes through malloc/calloc; jemalloc's own count of allocated
	# bytes must rise by as much, and fall again when it is freed.
	cat >"$BATS_TEST_TMPDIR/je.py" <<'EOF'
import ctypes
mallctl = ctypes.CDLL(None).mallctl   # AttributeError without jemalloc
mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                    ctypes.c_void_p, ctypes.c_size_t]
def allocated():
    e, n = ctypes.c_uint64(1), ctypes.c_size_t(8)
    assert mallctl(b"epoch", ctypes.byref(e), ctypes.byref(n), ctypes.byref(e), 8) == 0
    a, n = ctypes.c_size_t(0), ctypes.c_size_t(8)
    assert mallctl(b"stats.allocated", ctypes.byref(a), ctypes.byref(n), None, 0) == 0
    return a.value
before = allocated()
b = bytearray(64 << 20)
during = allocated()
del b
after = allocated()
print("rose", during - before >= 63 << 20, "fell", during - after >= 63 << 20)
EOF
	run --separate-stderr env LD_PRELOAD="$(sm_preload "$JEMALLOC")" "$PY" "$BATS_TEST_TMPDIR/je.py"
	assert_success
	assert_output "rose True fell True"
}

# ---- git ----

write_git_script() {
	cat >"$BATS_TEST_TMPDIR/git.sh" <<'EOF'
# Every step prints its own exit status, so that a failing git command shows.
step() { "$@"; echo "exit $? <- $*"; }
repo=$(mktemp -d "$BATS_TEST_TMPDIR/repo.XXXXXX")
export HOME=$repo/home GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_DATE='2024-01-02T03:04:05Z' \
	GIT_COMMITTER_DATE='2024-01-02T03:04:05Z' TZ=UTC
mkdir "$HOME"
cd "$repo" || exit 99
step git init -q -b main w
cd w || exit 99
step git config user.name "Test User"
step git config user.email test@example.org
for i in $(seq 1 40); do echo "line $i of file $i" >"f$i.txt"; done
step git add .
step git commit -q -m "first commit"
for i in $(seq 1 40 | grep 7); do echo "changed $i" >>"f$i.txt"; done
step git rm -q f1.txt
step git commit -q -a -m "second: change the sevens"
git checkout -q -b topic
echo topic >topic.txt
step git add topic.txt
step git commit -q -m "third on topic"
step git checkout -q main
step git merge -q --no-ff -m "merge topic" topic
step git log --format=%s
step git rev-parse HEAD
step git diff --stat HEAD~2 HEAD
step git gc -q
step git fsck --no-progress
step git status --porcelain
step git show --no-color nonexistent-revision
EOF
}

git_test() {
	write_git_script
	assert_shim_loaded --base "$1" git --version
	assert_transparent --base "$1" BATS_TEST_TMPDIR="$BATS_TEST_TMPDIR" bash "$BATS_TEST_TMPDIR/git.sh"
	assert_success # the last step's echo
	assert_line "first commit"
	assert_line "merge topic"
	assert_line "exit 0 <- git gc -q"
	assert_line "exit 128 <- git show --no-color nonexistent-revision"
	refute_line --partial "exit 1 "
	# Fixed author and committer dates: the same history gives the same hash, with
	# and without the shim (assert_transparent compared it) and on every machine.
	assert_regex "$output" $'\n[0-9a-f]{40}\nexit 0 <- git rev-parse HEAD'
	assert_line "$GIT_HEAD"
}

@test "git: init, commit, merge, log, gc and fsck as without the shim, same hashes" {
	git_test ""
}

@test "git with jemalloc behind the shim" {
	sm_need_jemalloc
	git_test "$JEMALLOC"
}

# ---- openssl ----

openssl_keys_test() {
	local base=$1 pre d=$BATS_TEST_TMPDIR
	pre=$(sm_preload "$base")
	assert_shim_loaded --base "$base" openssl version

	# Key generation is random: the keys made under the shim must be valid, and so
	# must what they sign, checked by an openssl without the shim.
	run env LD_PRELOAD="$pre" openssl genpkey -quiet -algorithm RSA \
		-pkeyopt rsa_keygen_bits:2048 -out "$d/rsa.pem"
	assert_success
	run env LD_PRELOAD="$pre" openssl genpkey -quiet -algorithm EC \
		-pkeyopt ec_paramgen_curve:P-256 -out "$d/ec.pem"
	assert_success
	run openssl pkey -in "$d/rsa.pem" -check -noout -text
	assert_success
	assert_line "Key is valid"
	assert_line "Private-Key: (2048 bit, 2 primes)"
	run openssl pkey -in "$d/ec.pem" -check -noout -text
	assert_success
	assert_line "Key is valid"
	assert_line "ASN1 OID: prime256v1"

	head -c 100000 /dev/zero | tr '\0' 'x' >"$d/data"
	local k
	for k in rsa ec; do
		run env LD_PRELOAD="$pre" openssl dgst -sha256 -sign "$d/$k.pem" -out "$d/$k.sig" "$d/data"
		assert_success
		run openssl pkey -in "$d/$k.pem" -pubout -out "$d/$k.pub"
		assert_success
		run openssl dgst -sha256 -verify "$d/$k.pub" -signature "$d/$k.sig" "$d/data"
		assert_success
		assert_output "Verified OK"
	done

	# Deterministic operations: the same bytes with and without the shim.
	assert_transparent --base "$base" openssl dgst -sha512 "$d/data"
	assert_output --partial "SHA2-512("
	assert_transparent --base "$base" \
		sh -c 'openssl enc -aes-256-cbc -K "$1" -iv "$2" -in "$3" | openssl dgst -sha256 -r' \
		sh 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
		0f0e0d0c0b0a09080706050403020100 "$d/data"
	assert_success
	assert_transparent --base "$base" openssl pkey -in "$d/rsa.pem" -pubout
	assert_output --partial "-----BEGIN PUBLIC KEY-----"
	# (its error lines start with the thread's address, which differs per run)
	assert_transparent --base "$base" --ignore-stderr openssl pkey -in /nonexistent.pem -noout
	assert_failure 1
	assert_equal "${stderr%%$'\n'*}" "Could not open file or uri for loading key from /nonexistent.pem"
}

@test "openssl: RSA 2048 and EC keys, signatures, digests and ciphers" {
	openssl_keys_test ""
}

@test "openssl with jemalloc behind the shim: keys, signatures, digests" {
	sm_need_jemalloc
	openssl_keys_test "$JEMALLOC"
}

# Picks a port that nothing listens on now (the server start is retried if another
# process takes it meanwhile).
free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

tls_test() {
	local pre d=$BATS_TEST_TMPDIR
	pre=$(sm_preload "$1")
	run openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/key.pem" -out "$d/cert.pem" -days 1 -subj /CN=localhost \
		-addext subjectAltName=IP:127.0.0.1
	assert_success

	local port try i
	for try in 1 2 3 4 5; do
		port=$(free_port)
		# -rev: the server sends back every line it receives, reversed, and closes
		# the connection on a line "CLOSE". -naccept 1: it exits after one client.
		env LD_PRELOAD="$pre" openssl s_server -accept "127.0.0.1:$port" \
			-cert "$d/cert.pem" -key "$d/key.pem" -tls1_3 -naccept 1 -rev \
			>"$d/server.log" 2>&1 </dev/null 3>&- &
		SERVER_PID=$!
		for i in $(seq 100); do
			grep -q '^ACCEPT' "$d/server.log" && break
			kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.05
		done
		grep -q '^ACCEPT' "$d/server.log" && break
		wait "$SERVER_PID" || true
		SERVER_PID=
	done
	[[ -n $SERVER_PID ]] || fail "s_server did not start: $(cat "$d/server.log")"
	# The server process really runs with the shim mapped.
	grep -qF "$SHIM" "/proc/$SERVER_PID/maps" || fail "the shim is not mapped in s_server"

	run --separate-stderr env LD_PRELOAD="$pre" timeout 20 openssl s_client \
		-connect "127.0.0.1:$port" -tls1_3 -CAfile "$d/cert.pem" -verify_return_error \
		-verify_ip 127.0.0.1 -ign_eof <<<$'hello-from-the-client\nCLOSE'
	assert_success
	assert_line "Verify return code: 0 (ok)"
	assert_line "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"
	assert_line --regexp '^ +Protocol +: TLSv1\.3$'
	# The server got our line: it sent it back reversed.
	assert_line "tneilc-eht-morf-olleh"

	# The server, under the shim too, completed the handshake and exits cleanly.
	for i in $(seq 100); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	local rc=0
	wait "$SERVER_PID" || rc=$?
	SERVER_PID=
	assert_equal "$rc" 0
	run cat "$d/server.log"
	assert_line "Protocol version: TLSv1.3"
	assert_line --regexp '^ +1 server accepts that finished$'
	assert_line "CONNECTION CLOSED"
}

@test "openssl: TLS 1.3 handshake between s_server and s_client, both under the shim" {
	tls_test ""
}

@test "openssl TLS 1.3 with jemalloc behind the shim" {
	sm_need_jemalloc
	tls_test "$JEMALLOC"
}

# ---- bash ----

write_bash_script() {
	cat >"$BATS_TEST_TMPDIR/script.bash" <<'EOF'
set -u
declare -a list=()
declare -A count=()
for ((i = 0; i < 3000; i++)); do
	list+=("item-$((i * 37 % 1000))")
	count[${list[i]}]=$(( ${count[${list[i]}]:-0} + 1 ))
done
echo "list ${#list[@]} distinct ${#count[@]} item-7 ${count[item-7]}"

fib() { (($1 < 2)) && { echo "$1"; return; }; echo $(( $(fib $(($1 - 1))) + $(fib $(($1 - 2))) )); }
echo "fib 12 = $(fib 12)"

joined=$(IFS=,; echo "${list[*]:0:5}")
echo "joined $joined"
upper=${joined^^}; echo "upper ${upper//ITEM-/#}"

( cd / && echo "subshell in $PWD"; exit 3 ); echo "subshell exit $?"
sorted=$(printf '%s\n' "${!count[@]}" | sort -t- -k2 -n | head -3 | tr '\n' ' ')
echo "sorted $sorted"

while IFS=: read -r name value; do
	printf '%-6s=%5s\n' "$name" "$value"
done <<HEREDOC
alpha:${#list[@]}
beta:$(( ${#joined} * 2 ))
gamma:$(echo nested $(echo deep))
HEREDOC

big=""
for ((i = 0; i < 2000; i++)); do big+="$i,"; done
echo "big ${#big} ${big:0:10}"
readarray -t lines < <(seq 1 500 | grep 9)
echo "readarray ${#lines[@]} last ${lines[-1]}"
unset 'count[item-7]'; echo "after unset ${#count[@]}"
exit 5
EOF
}

@test "bash: arrays, functions, subshells, command substitution, here-docs" {
	write_bash_script
	assert_transparent bash "$BATS_TEST_TMPDIR/script.bash"
	assert_failure 5
	assert_line "list 3000 distinct 1000 item-7 3"
	assert_line "fib 12 = 144"
	assert_line "subshell exit 3"
	assert_line "gamma =nested deep"
	assert_line "readarray 95 last 499"
}

@test "bash with jemalloc behind the shim" {
	sm_need_jemalloc
	write_bash_script
	assert_transparent --base "$JEMALLOC" bash "$BATS_TEST_TMPDIR/script.bash"
	assert_failure 5
	assert_line "fib 12 = 144"
}

# ---- SECRETMEM_MODE=off, a program that never allocates ----

@test "SECRETMEM_MODE=off: as without the shim, even with rules that would route" {
	# With rules and mode off the arena must not even start: the arena-less build
	# would end the program if it did.
	assert_transparent SECRETMEM_MODE=off SECRETMEM_LIBS='*' SECRETMEM_SITES=main "$CXXPROG"
	assert_success
	assert_line "PASSED: 0 failed"
	assert_transparent SECRETMEM_MODE=off SECRETMEM_LIBS='*' "$THREADS" 2000
	assert_success
	assert_output --partial "errors=0"
	assert_transparent --ignore-stderr SECRETMEM_MODE=off SECRETMEM_LIBS='*' "$ALLFUNCS"
	assert_success
	write_python_workload
	assert_transparent SECRETMEM_MODE=off PYTHONHASHSEED=0 "$PY" "$BATS_TEST_TMPDIR/work.py"
	assert_output "$PY_EXPECTED"
}

@test "SECRETMEM_MODE=off with jemalloc behind the shim" {
	sm_need_jemalloc
	assert_transparent --base "$JEMALLOC" SECRETMEM_MODE=off SECRETMEM_LIBS='*' "$CXXPROG"
	assert_success
	run env LD_PRELOAD="$(sm_preload "$JEMALLOC")" SECRETMEM_MODE=off "$ALLFUNCS" --jemalloc
	assert_success
	assert_line "ok jemalloc serves pvalloc and its free"
}

@test "a program that never allocates starts, runs and exits 0" {
	assert_transparent "$ALLFUNCS" --noalloc
	assert_success
	assert_output "started"
	assert_equal "$stderr" ""
}

@test "a program that never allocates is still stopped before main by a bad variable" {
	run --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_MODE=bogus "$ALLFUNCS" --noalloc
	assert_failure "$SM_EXIT_CONFIG"
	refute_output --partial "started"
	assert_equal "$stderr" \
		'libsecretmem-preload: SECRETMEM_MODE="bogus" is not valid: expected exclusive, uncached or off'
}

@test "a misspelled SECRETMEM_ variable gets a warning naming the nearest one, and the program runs; a known one gets none" {
	run --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_LIB=allfuncs "$ALLFUNCS" --noalloc
	assert_success
	assert_output --partial "started"
	assert_equal "$stderr" \
		'libsecretmem-preload: SECRETMEM_LIB is not a variable of the library and is ignored: did you mean SECRETMEM_LIBS?'
	run --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_BOGUSNAME=1 "$ALLFUNCS" --noalloc
	assert_success
	assert_equal "$stderr" \
		'libsecretmem-preload: SECRETMEM_BOGUSNAME is not a variable of the library and is ignored (see libsecretmem-preload(7), ENVIRONMENT)'
	run --separate-stderr env LD_PRELOAD="$SHIM" SECRETMEM_MODE=exclusive SECRETMEM_LOG=warn "$ALLFUNCS" --noalloc
	assert_success
	assert_equal "$stderr" ""
}

@test "/bin/true and /bin/echo under the shim" {
	assert_transparent /bin/true
	assert_success
	assert_transparent /bin/echo one two
	assert_output "one two"
	assert_transparent /bin/false
	assert_failure 1
}

# ---- rules that match nothing: routing is on, yet nothing changes ----

@test "rules that match no code: programs behave as without the shim" {
	# (at the default log level such rules are a warning: tests/sites.bats)
	local rules=(SECRETMEM_SITES=sm_no_such_function SECRETMEM_LIBS=libsm-no-such-lib.so SECRETMEM_LOG=error)
	assert_transparent "${rules[@]}" "$CXXPROG"
	assert_success
	assert_transparent "${rules[@]}" "$THREADS" 5000
	assert_success
	assert_transparent --ignore-stderr "${rules[@]}" "$ALLFUNCS"
	assert_success
	write_python_workload
	assert_transparent "${rules[@]}" PYTHONHASHSEED=0 "$PY" "$BATS_TEST_TMPDIR/work.py"
	assert_output "$PY_EXPECTED"
}
