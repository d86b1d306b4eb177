#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The matrix, servers: real Debian-packaged TLS servers (nginx, haproxy, stunnel4,
# openssl s_server, python3's ssl) started on 127.0.0.1 with a fresh key, serving
# real requests, then scanned by root through /proc/PID/mem for the key's material
# (RSA p, q and d, EC private scalar; both byte orders; whole and by 32-byte pieces).
# Each program runs twice: without the shim, where the scan must find the key (the
# control: else the scan proves nothing), and through secretmem-run with the rule
# the README's table gives, where every process must map ' /secretmem (deleted)',
# the requests must succeed and the scan must find nothing.

load helpers
load routing-helpers
load servers-helpers

setup_file() {
	rt_build memscan
	KEYS=$BATS_FILE_TMPDIR/keys
	mkdir -p "$KEYS"
	srv_key "$KEYS/rsa.pem" rsa
	srv_key "$KEYS/ec.pem" ec
	export KEYS
}

setup() {
	sm_setup
	SRV_PIDS=()
}

teardown() {
	srv_teardown
}

# ---- nginx: the master reads the key, forks the workers, which do the handshakes ----

# start_nginx KIND [RUNNER...]: nginx with 2 workers serving TLS with KIND's key on
# a free port (PORT); sets NGINX_PID (the master).
start_nginx() {
	local kind=$1
	shift
	command -v nginx >/dev/null || fail "nginx is not installed (apt-get install nginx-light)"
	local d=$BATS_TEST_TMPDIR/nginx
	PORT=$(srv_port)
	srv_nginx_conf "$d" "$KEYS/$kind.pem"
	"$@" nginx -p "$d" -c "$d/nginx.conf" -e "$BATS_TEST_TMPDIR/nginx.log" \
		</dev/null >/dev/null 2>"$BATS_TEST_TMPDIR/nginx.err" 3>&- &
	NGINX_PID=$!
	srv_track "$NGINX_PID"
	srv_wait_port "$PORT" "$NGINX_PID"
}

# nginx_requests: HTTPS requests until each of the 2 workers has answered one (at
# most 100); sets WORKERS.
nginx_requests() {
	srv_wait_children "$NGINX_PID" 2
	mapfile -t WORKERS <<<"$CHILDREN"
	local i w seen=" "
	for ((i = 0; i < 100; i++)); do
		run -0 timeout 10 curl -sS --cacert "$KEYS/$KIND.pem.crt" "https://localhost:$PORT/" \
			--resolve "localhost:$PORT:127.0.0.1"
		[[ $output =~ ^worker\ ([0-9]+)$ ]] || fail "unexpected answer: $output"
		[[ $seen == *" ${BASH_REMATCH[1]} "* ]] || seen+="${BASH_REMATCH[1]} "
		(($(wc -w <<<"$seen") == 2)) && break
	done
	for w in "${WORKERS[@]}"; do
		[[ $seen == *" $w "* ]] || fail "worker $w answered none of $i requests (seen:$seen)"
	done
}

nginx_control() {
	KIND=$1
	srv_patterns "$KEYS/$KIND.pem"
	start_nginx "$KIND"
	nginx_requests
	srv_assert_found "$NGINX_PID" "${WORKERS[@]}"
}

nginx_protected() {
	KIND=$1
	srv_patterns "$KEYS/$KIND.pem"
	start_nginx "$KIND" "$SRV_RUN" --lib 'libcrypto.so*' --
	nginx_requests
	srv_assert_protected "$NGINX_PID" "${WORKERS[@]}"
}

@test "nginx RSA: without the shim root reads p, q or d in the master or a worker (control)" {
	nginx_control rsa
}

@test "nginx RSA: --lib 'libcrypto.so*' protects master and both workers, after a request through each" {
	nginx_protected rsa
}

# nginx_reload: nginx -s reload (the master reads the configuration and the key
# again and forks new workers); waits until the old workers have gone and 2 new
# ones run.
nginx_reload() {
	local old=("${WORKERS[@]}") i w gone
	run -0 timeout 10 nginx -p "$BATS_TEST_TMPDIR/nginx" -c "$BATS_TEST_TMPDIR/nginx/nginx.conf" \
		-e "$BATS_TEST_TMPDIR/nginx.log" -s reload
	for ((i = 0; i < 200; i++)); do
		gone=1
		for w in "${old[@]}"; do
			kill -0 "$w" 2>/dev/null && gone=0
		done
		((gone)) && [[ $(srv_children "$NGINX_PID" | wc -l) == 2 ]] && return 0
		sleep 0.05
	done
	fail "after the reload the old workers (${old[*]}) are still there or the new ones are not: $(srv_children "$NGINX_PID")"
}

@test "nginx RSA: after nginx -s reload the master and the new workers are still protected" {
	KIND=rsa
	srv_patterns "$KEYS/$KIND.pem"
	start_nginx "$KIND" "$SRV_RUN" --lib 'libcrypto.so*' --
	nginx_requests
	nginx_reload
	nginx_requests
	srv_assert_protected "$NGINX_PID" "${WORKERS[@]}"
}

@test "nginx EC: without the shim root reads the private scalar (control)" {
	nginx_control ec
}

@test "nginx EC: --lib 'libcrypto.so*' protects master and both workers, after a request through each" {
	nginx_protected ec
}

# ---- haproxy: -db (one process) and -W (a master and its worker) ----

# start_haproxy KIND MODE [RUNNER...]: haproxy (MODE -db or -W) terminating TLS with
# KIND's key and answering every request itself; sets HAPROXY_PID.
start_haproxy() {
	local kind=$1 mode=$2
	shift 2
	command -v haproxy >/dev/null || fail "haproxy is not installed (apt-get install haproxy)"
	local d=$BATS_TEST_TMPDIR/haproxy
	mkdir -p "$d"
	PORT=$(srv_port)
	# haproxy takes the certificate and its key from one file
	cat "$KEYS/$kind.pem.crt" "$KEYS/$kind.pem" >"$d/site.pem"
	cat >"$d/haproxy.cfg" <<CONF
global
	maxconn 64
defaults
	mode http
	timeout connect 5s
	timeout client 5s
	timeout server 5s
frontend fe
	bind 127.0.0.1:$PORT ssl crt $d/site.pem
	http-request return status 200 content-type text/plain string "haproxy ok"
CONF
	"$@" haproxy "$mode" -f "$d/haproxy.cfg" </dev/null >/dev/null 2>"$BATS_TEST_TMPDIR/haproxy.err" 3>&- &
	HAPROXY_PID=$!
	srv_track "$HAPROXY_PID"
	srv_wait_port "$PORT" "$HAPROXY_PID"
	HAPROXY_PIDS=$HAPROXY_PID
	if [[ $mode == -W ]]; then
		srv_wait_children "$HAPROXY_PID" 1
		HAPROXY_PIDS+=" $CHILDREN"
	fi
}

# https_get PORT EXPECTED [CERT]: HTTPS requests (a few, each a full handshake) that
# verify the server's certificate and must answer EXPECTED.
https_get() {
	local i
	for ((i = 0; i < 3; i++)); do
		run -0 timeout 10 curl -sS --cacert "${3:-$KEYS/$KIND.pem.crt}" \
			--resolve "localhost:$1:127.0.0.1" "https://localhost:$1/"
		assert_output --partial "$2"
	done
}

haproxy_case() { # KIND MODE control|protected
	KIND=$1
	srv_patterns "$KEYS/$KIND.pem"
	if [[ $3 == control ]]; then
		start_haproxy "$KIND" "$2"
	else
		start_haproxy "$KIND" "$2" "$SRV_RUN" --lib 'libcrypto.so*' --
	fi
	https_get "$PORT" "haproxy ok"
	# shellcheck disable=SC2086 # a list of pids
	if [[ $3 == control ]]; then srv_assert_found $HAPROXY_PIDS; else srv_assert_protected $HAPROXY_PIDS; fi
}

@test "haproxy -db RSA: without the shim root reads p, q or d (control)" {
	haproxy_case rsa -db control
}

@test "haproxy -db RSA: --lib 'libcrypto.so*' protects it" {
	haproxy_case rsa -db protected
}

@test "haproxy -W EC: without the shim root reads the private scalar in the master or the worker (control)" {
	haproxy_case ec -W control
}

@test "haproxy -W EC: --lib 'libcrypto.so*' protects the master and the worker" {
	haproxy_case ec -W protected
}

@test "haproxy -W RSA: --lib 'libcrypto.so*' protects the master and the worker" {
	haproxy_case rsa -W protected
}

@test "haproxy -W RSA: after a reload (SIGUSR2: the master executes itself again) master and new worker are protected" {
	KIND=rsa
	srv_patterns "$KEYS/$KIND.pem"
	start_haproxy "$KIND" -W "$SRV_RUN" --lib 'libcrypto.so*' --
	https_get "$PORT" "haproxy ok"
	local old=$CHILDREN i
	kill -USR2 "$HAPROXY_PID"
	# the old worker gone (and reaped) first, then the one child left is the new one
	for ((i = 0; i < 200; i++)); do
		CHILDREN=
		kill -0 "$old" 2>/dev/null || CHILDREN=$(srv_children "$HAPROXY_PID")
		[[ $CHILDREN =~ ^[0-9]+$ && $CHILDREN != "$old" ]] && break
		sleep 0.05
	done
	[[ $CHILDREN =~ ^[0-9]+$ && $CHILDREN != "$old" ]] ||
		fail "no new worker in place of $old after SIGUSR2 (children: $(srv_children "$HAPROXY_PID")): $(srv_logs)"
	grep -q 'Reloading HAProxy' "$BATS_TEST_TMPDIR/haproxy.err" &&
		(($(grep -c 'Loading success' "$BATS_TEST_TMPDIR/haproxy.err") == 2)) ||
		fail "haproxy did not load its configuration again: $(srv_logs)"
	https_get "$PORT" "haproxy ok"
	# shellcheck disable=SC2086 # a list of pids
	srv_assert_protected "$HAPROXY_PID" $CHILDREN
}

# ---- stunnel4: it gives OpenSSL its own memory functions ----

# stunnel calls CRYPTO_set_mem_functions(str_alloc_detached_debug, ...): libcrypto's
# allocations reach malloc from stunnel's code, one frame below libcrypto. The shim
# sees the call and looks through those functions, so libcrypto alone is enough
# (before, p, q and the EC scalar stayed in the heap under it); --depth 1 does it
# with a stack walk at every allocation.
STUNNEL_RULE=(--lib 'libcrypto.so*' --depth 1)
# The rule secretmem-audit finds (tests/audit.bats): the program itself tagged,
# whose allocator functions make those blocks, with no stack walk.
STUNNEL_AUDIT_RULE=(--lib 'libcrypto.so*' --lib stunnel4)

# start_backend: a plain HTTP server on a free port (BACKEND_PORT) answering
# "backend ok" to every request.
start_backend() {
	BACKEND_PORT=$(srv_port)
	python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\nbackend ok\n")
    c.close()' "$BACKEND_PORT" </dev/null >/dev/null 2>"$BATS_TEST_TMPDIR/backend.err" 3>&- &
	srv_track $!
	srv_wait_port "$BACKEND_PORT" $!
}

# start_stunnel KIND [RUNNER...]: stunnel4 in the foreground, TLS with KIND's key on
# PORT in front of the backend; sets STUNNEL_PID.
start_stunnel() {
	local kind=$1
	shift
	command -v stunnel4 >/dev/null || fail "stunnel4 is not installed (apt-get install stunnel4)"
	start_backend
	PORT=$(srv_port)
	cat >"$BATS_TEST_TMPDIR/stunnel.conf" <<CONF
foreground = yes
pid =
[https]
accept = 127.0.0.1:$PORT
connect = 127.0.0.1:$BACKEND_PORT
cert = $KEYS/$kind.pem.crt
key = $KEYS/$kind.pem
CONF
	"$@" stunnel4 "$BATS_TEST_TMPDIR/stunnel.conf" </dev/null >/dev/null \
		2>"$BATS_TEST_TMPDIR/stunnel.err" 3>&- &
	STUNNEL_PID=$!
	srv_track "$STUNNEL_PID"
	srv_wait_port "$PORT" "$STUNNEL_PID"
}

stunnel_case() { # KIND control|protected|audited|libcrypto
	KIND=$1
	srv_patterns "$KEYS/$KIND.pem"
	case $2 in
	control) start_stunnel "$KIND" ;;
	protected) start_stunnel "$KIND" "$SRV_RUN" "${STUNNEL_RULE[@]}" -- ;;
	audited) start_stunnel "$KIND" "$SRV_RUN" "${STUNNEL_AUDIT_RULE[@]}" -- ;;
	libcrypto) start_stunnel "$KIND" "$SRV_RUN" --lib 'libcrypto.so*' -- ;;
	esac
	https_get "$PORT" "backend ok"
	case $2 in
	control) srv_assert_found "$STUNNEL_PID" ;;
	protected | audited | libcrypto) srv_assert_protected "$STUNNEL_PID" ;;
	esac
}

@test "stunnel4 RSA: without the shim root reads p, q or d (control)" {
	stunnel_case rsa control
}

@test "stunnel4 RSA: --lib 'libcrypto.so*' alone protects it (the memory functions it gives OpenSSL are looked through)" {
	stunnel_case rsa libcrypto
}

@test "stunnel4 RSA: --lib 'libcrypto.so*' --depth 1 protects it" {
	stunnel_case rsa protected
}

@test "stunnel4 RSA: the rule secretmem-audit finds, --lib 'libcrypto.so*' --lib stunnel4, protects it" {
	stunnel_case rsa audited
}

@test "stunnel4 EC: without the shim root reads the private scalar (control)" {
	stunnel_case ec control
}

@test "stunnel4 EC: --lib 'libcrypto.so*' alone protects it" {
	stunnel_case ec libcrypto
}

@test "stunnel4 EC: --lib 'libcrypto.so*' --depth 1 protects it" {
	stunnel_case ec protected
}

@test "stunnel4 EC: the rule secretmem-audit finds, --lib 'libcrypto.so*' --lib stunnel4, protects it" {
	stunnel_case ec audited
}

# ---- openssl s_server ----

# start_s_server KIND [RUNNER...]: s_server -www with KIND's key on PORT; sets
# S_SERVER_PID.
start_s_server() {
	local kind=$1
	shift
	PORT=$(srv_port)
	"$@" openssl s_server -accept "127.0.0.1:$PORT" -key "$KEYS/$kind.pem" \
		-cert "$KEYS/$kind.pem.crt" -www -naccept 100 </dev/null >/dev/null \
		2>"$BATS_TEST_TMPDIR/s_server.err" 3>&- &
	S_SERVER_PID=$!
	srv_track "$S_SERVER_PID"
	srv_wait_port "$PORT" "$S_SERVER_PID"
}

s_server_case() { # KIND control|protected
	KIND=$1
	srv_patterns "$KEYS/$KIND.pem"
	if [[ $2 == control ]]; then
		start_s_server "$KIND"
	else
		start_s_server "$KIND" "$SRV_RUN" --lib 'libcrypto.so*' --
	fi
	https_get "$PORT" "s_server"
	# and a TLS 1.2 handshake (the key signs the ServerKeyExchange)
	run -0 timeout 10 curl -sS --tlsv1.2 --tls-max 1.2 --cacert "$KEYS/$KIND.pem.crt" \
		--resolve "localhost:$PORT:127.0.0.1" "https://localhost:$PORT/"
	assert_output --partial "Protocol  : TLSv1.2"
	if [[ $2 == control ]]; then srv_assert_found "$S_SERVER_PID"; else srv_assert_protected "$S_SERVER_PID"; fi
}

@test "openssl s_server EC: without the shim root reads the private scalar (control)" {
	s_server_case ec control
}

@test "openssl s_server EC: --lib 'libcrypto.so*' protects it" {
	s_server_case ec protected
}

@test "openssl s_server RSA: without the shim root reads p, q or d (control)" {
	s_server_case rsa control
}

@test "openssl s_server RSA: --lib 'libcrypto.so*' protects it (TLS 1.3 and 1.2)" {
	s_server_case rsa protected
}

# ---- python3's ssl module ----

# Debian's python3 (a python3 earlier in PATH, e.g. pyenv's, is not the packaged one)
DEBIAN_PYTHON=/usr/bin/python3

# start_python KIND [RUNNER...]: http.server behind ssl.SSLContext with KIND's key
# on PORT; sets PYTHON_PID.
start_python() {
	local kind=$1
	shift
	[[ -x $DEBIAN_PYTHON ]] || fail "$DEBIAN_PYTHON is missing (apt-get install python3)"
	PORT=$(srv_port)
	"$@" "$DEBIAN_PYTHON" -c 'import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"python ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()' "$PORT" "$KEYS/$kind.pem.crt" "$KEYS/$kind.pem" </dev/null >/dev/null \
		2>"$BATS_TEST_TMPDIR/python.err" 3>&- &
	PYTHON_PID=$!
	srv_track "$PYTHON_PID"
	srv_wait_port "$PORT" "$PYTHON_PID"
}

python_case() { # KIND control|protected
	KIND=$1
	srv_patterns "$KEYS/$KIND.pem"
	if [[ $2 == control ]]; then
		start_python "$KIND"
	else
		start_python "$KIND" "$SRV_RUN" --lib 'libcrypto.so*' --
	fi
	https_get "$PORT" "python ok"
	if [[ $2 == control ]]; then srv_assert_found "$PYTHON_PID"; else srv_assert_protected "$PYTHON_PID"; fi
}

@test "python3 ssl RSA: without the shim root reads p, q or d (control)" {
	python_case rsa control
}

@test "python3 ssl RSA: --lib 'libcrypto.so*' protects it" {
	python_case rsa protected
}

@test "python3 ssl EC: without the shim root reads the private scalar (control)" {
	python_case ec control
}

@test "python3 ssl EC: --lib 'libcrypto.so*' protects it" {
	python_case ec protected
}
