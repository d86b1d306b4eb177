#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The secret numbers of an unencrypted private key file, for agents.bats.

    key_secrets.py openssh|openpgp FILE

One hex string a line, big-endian as the file holds them, without sign bytes:
  openssh  an OpenSSH private key file (ssh-keygen): Ed25519: the 32-byte seed;
           RSA: d, p and q.
  openpgp  a binary OpenPGP secret key export (gpg --export-secret-keys) whose
           primary key is not protected by a passphrase: RSA: d, p and q;
           EdDSA (Ed25519): the 32-byte seed.
Exits 2 on a file it cannot read.
"""
import base64
import struct
import sys


def read_string(buf, i):
    (n,) = struct.unpack_from(">I", buf, i)
    if i + 4 + n > len(buf):
        raise ValueError("truncated key")
    return buf[i + 4:i + 4 + n], i + 4 + n


def openssh(path):
    text = open(path).read()
    body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    blob = base64.b64decode(body)
    magic = b"openssh-key-v1\0"
    if not blob.startswith(magic):
        raise ValueError("%s: not an OpenSSH private key" % path)
    i = len(magic)
    cipher, i = read_string(blob, i)
    if cipher != b"none":
        raise ValueError("%s: the key is encrypted" % path)
    _, i = read_string(blob, i)  # kdf name
    _, i = read_string(blob, i)  # kdf options
    (nkeys,) = struct.unpack_from(">I", blob, i)
    i += 4
    for _ in range(nkeys):
        _, i = read_string(blob, i)  # public keys
    priv, _ = read_string(blob, i)
    j = 8  # two check integers
    out = []
    for _ in range(nkeys):
        kind, j = read_string(priv, j)
        if kind == b"ssh-ed25519":
            _, j = read_string(priv, j)  # public key
            sk, j = read_string(priv, j)  # seed || public key
            out.append(sk[:32])
        elif kind == b"ssh-rsa":
            fields = []
            for _ in range(6):  # n, e, d, iqmp, p, q
                v, j = read_string(priv, j)
                fields.append(v.lstrip(b"\0"))
            out += [fields[2], fields[4], fields[5]]
        else:
            raise ValueError("%s: key type %s not handled" % (path, kind.decode()))
        _, j = read_string(priv, j)  # comment
    return out


def openpgp(path):
    data = open(path, "rb").read()
    i = 0
    while i < len(data):
        b = data[i]
        i += 1
        if b & 0x40:  # new format header
            tag, n = b & 0x3F, data[i]
            i += 1
            if 192 <= n < 224:
                n = ((n - 192) << 8) + data[i] + 192
                i += 1
            elif n == 255:
                (n,) = struct.unpack_from(">I", data, i)
                i += 4
        else:  # old format header
            tag = (b >> 2) & 0xF
            width = (1, 2, 4)[b & 3]
            n = int.from_bytes(data[i:i + width], "big")
            i += width
        body = data[i:i + n]
        i += n
        if tag != 5:  # secret key packet
            continue
        if body[0] != 4 or body[5] not in (1, 22):
            raise ValueError("%s: the primary key is not a v4 RSA or EdDSA key" % path)
        algo = body[5]
        j = 6

        def mpi():
            nonlocal j
            bits = int.from_bytes(body[j:j + 2], "big")
            v = body[j + 2:j + 2 + (bits + 7) // 8]
            j += 2 + (bits + 7) // 8
            return v

        if algo == 1:
            mpi(), mpi()  # n, e
        else:
            j += 1 + body[j]  # the curve's OID
            mpi()  # the public point
        if body[j] != 0:
            raise ValueError("%s: the secret key is protected" % path)
        j += 1
        if algo == 1:
            d, p, q = mpi(), mpi(), mpi()
            return [d, p, q]
        # the seed, as an MPI without its leading zero bytes
        return [mpi().rjust(32, b"\0")]
    raise ValueError("%s: no secret key packet" % path)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("openssh", "openpgp"):
        print(__doc__, file=sys.stderr)
        return 2
    for s in (openssh if sys.argv[1] == "openssh" else openpgp)(sys.argv[2]):
        print(s.hex())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ValueError, IndexError, struct.error) as e:
        print("key_secrets.py: %s" % e, file=sys.stderr)
        sys.exit(2)
