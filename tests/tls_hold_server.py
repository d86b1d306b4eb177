#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An HTTPS server for clients.bats that holds each client mid-request.

    tls_hold_server.py PORTFILE CERT KEY CLIENTCA DIR

Listens on a free port of 127.0.0.1 (written to PORTFILE), requires a client
certificate signed by CLIENTCA, reads one request, creates DIR/held (the client has
signed with its key and now waits for the answer, so it is alive to be scanned) and
answers only once DIR/go exists (at most 30 s), with the client's common name. One
connection at a time; runs until killed.
"""
import os
import socket
import ssl
import sys
import time

portfile, cert, key, client_ca, work = sys.argv[1:6]

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(client_ca)
ctx.verify_mode = ssl.CERT_REQUIRED

lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", 0))
lsock.listen(8)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % lsock.getsockname()[1])
os.rename(portfile + ".tmp", portfile)

held = os.path.join(work, "held")
go = os.path.join(work, "go")
while True:
    conn, _ = lsock.accept()
    conn.settimeout(30)
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = tls.recv(4096)
            if not chunk:
                break
            request += chunk
        subject = dict(x[0] for x in tls.getpeercert()["subject"])
        with open(held, "w") as f:
            f.write("held\n")
        deadline = time.monotonic() + 30
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.02)
        body = ("client %s\n" % subject.get("commonName", "?")).encode()
        tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        tls.close()
    except (OSError, ssl.SSLError) as e:
        print("tls_hold_server: %s" % e, file=sys.stderr, flush=True)
    finally:
        for f in (held, go):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
        conn.close()
