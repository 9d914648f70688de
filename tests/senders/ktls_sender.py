#!/usr/bin/env python3
"""A kernel-TLS sender for zcdoctor's guest tier (tests/guest/scenarios/causes.rs): connects to
TARGET:PORT, turns the socket into kTLS (TCP_ULP "tls", TLS_TX with TLS 1.2 AES-GCM-128 and a
fixed test key: the peer is zcdoctor's sink, which only counts bytes), optionally sets
SO_ZEROCOPY (--zerocopy), then tries one MSG_ZEROCOPY send and one plain send and prints
  {"pid": P, "fd": F, "zerocopy_send": "ok" | "EOPNOTSUPP" | ..., "plain_send": "ok" | ...}
and keeps the socket open until stdin closes (so `zcdoctor check --pid` can read it)."""
import argparse
import errno
import json
import os
import socket
import struct
import sys

SO_ZEROCOPY = 60
MSG_ZEROCOPY = 0x4000000
TCP_ULP = 31
SOL_TLS = 282
TLS_TX = 1
TLS_1_2_VERSION = 0x0303
TLS_CIPHER_AES_GCM_128 = 51


def outcome(f):
    try:
        f()
        return "ok"
    except OSError as e:
        # 95 has two names; the kernel's source says EOPNOTSUPP.
        if e.errno == errno.EOPNOTSUPP:
            return "EOPNOTSUPP"
        return errno.errorcode.get(e.errno, str(e.errno))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="198.18.1.2")
    ap.add_argument("--port", type=int, default=5201)
    ap.add_argument("--zerocopy", action="store_true")
    a = ap.parse_args()
    s = socket.create_connection((a.target, a.port))
    s.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
    # struct tls12_crypto_info_aes_gcm_128: info {version, cipher_type}, iv[8], key[16],
    # salt[4], rec_seq[8].
    info = struct.pack("=HH8s16s4s8s", TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128,
                       b"\x00" * 8, b"\x01" * 16, b"\x02" * 4, b"\x00" * 8)
    s.setsockopt(SOL_TLS, TLS_TX, info)
    if a.zerocopy:
        s.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
    payload = b"z" * 16384
    zc = outcome(lambda: s.send(payload, MSG_ZEROCOPY))
    plain = outcome(lambda: s.send(payload))
    print(json.dumps({"pid": os.getpid(), "fd": s.fileno(), "zerocopy_send": zc,
                      "plain_send": plain}), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
