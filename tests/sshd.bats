#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Debian's sshd (OpenSSH 9.2) under the shim: a listener on 127.0.0.1 with an RSA
# and an Ed25519 host key, logged into with every kind of key exchange. sshd runs
# itself again for each connection, and its pre-authentication child sandboxes
# itself with seccomp (an allow-list; every other call kills it): the shim must
# make no call that sandbox kills (before: every Diffie-Hellman login died on
# mincore, and every login under --lib sshd). Root then scans the listener for
# the host keys' numbers and decrypts every shielded key it can find
# (tests/ssh_agent_scan.py: sshd keeps its host keys shielded like ssh-agent).

load helpers
load routing-helpers
load servers-helpers

setup_file() {
	rt_build memscan
	command -v /usr/sbin/sshd >/dev/null || {
		echo "sshd is not installed (apt-get install openssh-server)" >&2
		return 1
	}
	KEYS=$BATS_FILE_TMPDIR/keys
	mkdir -p "$KEYS"
	ssh-keygen -q -t rsa -b 2048 -N '' -C host -f "$KEYS/host_rsa" &&
		ssh-keygen -q -t ed25519 -N '' -C host -f "$KEYS/host_ed25519" &&
		ssh-keygen -q -t ed25519 -N '' -C client -f "$KEYS/client" ||
		{ echo "cannot make ssh keys" >&2; return 1; }
	cp "$KEYS/client.pub" "$KEYS/authorized_keys"
	export KEYS
}

setup() {
	sm_setup
	SRV_PIDS=()
	mkdir -p /run/sshd # sshd's privilege-separation directory
}

teardown() {
	srv_teardown
}

# start_sshd [RUNNER...]: sshd -D on a free port; sets SSHD_PID and PORT.
start_sshd() {
	PORT=$(srv_port)
	cat >"$BATS_TEST_TMPDIR/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $KEYS/host_rsa
HostKey $KEYS/host_ed25519
PidFile $BATS_TEST_TMPDIR/sshd.pid
AuthorizedKeysFile $KEYS/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel VERBOSE
CONF
	"$@" /usr/sbin/sshd -D -e -f "$BATS_TEST_TMPDIR/sshd_config" \
		2>"$BATS_TEST_TMPDIR/sshd.err" </dev/null &
	SSHD_PID=$!
	srv_track "$SSHD_PID"
	srv_wait_port "$PORT" "$SSHD_PID"
}

# logins: one login for each key exchange and host key; every one must work.
logins() {
	local kex hk
	for kex in curve25519-sha256 ecdh-sha2-nistp256 diffie-hellman-group14-sha256 \
		diffie-hellman-group16-sha512 diffie-hellman-group-exchange-sha256; do
		for hk in rsa-sha2-512 ssh-ed25519; do
			run timeout 30 ssh -F none -i "$KEYS/client" -o BatchMode=yes \
				-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
				-o LogLevel=ERROR -o KexAlgorithms="$kex" -o HostKeyAlgorithms="$hk" \
				-p "$PORT" root@127.0.0.1 echo login-ok
			[[ $output == *login-ok* ]] ||
				fail "$kex $hk: the login failed ($status): $output $(srv_logs)"
		done
	done
	! grep -q 'terminated by signal' "$BATS_TEST_TMPDIR/sshd.err" ||
		fail "a child was killed: $(srv_logs)"
}

host_patterns() {
	key_patterns openssh "$KEYS/host_rsa" "$KEYS/host_ed25519"
}

@test "sshd: without the shim every key exchange logs in and root decrypts both shielded host keys (control)" {
	host_patterns
	start_sshd
	logins
	unshield "$SSHD_PID"
	((UNSHIELDED == 2)) || fail "the attack decrypted $UNSHIELDED host keys, not 2: $UNSHIELD"
}

@test "sshd: --lib 'libcrypto.so*': every key exchange logs in (the pre-authentication sandbox kills no call of the shim)" {
	start_sshd "$SRV_RUN" --lib 'libcrypto.so*' --
	logins
	srv_assert_shim "$SSHD_PID"
}

@test "sshd: --lib 'libcrypto.so*' --lib sshd: every key exchange logs in, and neither the host keys nor their shielded copies are readable" {
	host_patterns
	start_sshd "$SRV_RUN" --lib 'libcrypto.so*' --lib sshd --
	logins
	srv_assert_protected "$SSHD_PID"
	unshield "$SSHD_PID"
	((UNSHIELDED == 0)) || fail "the attack decrypted $UNSHIELDED host keys: $UNSHIELD"
	refute_line --regexp '^found '
}
