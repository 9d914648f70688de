#!/usr/bin/env python3
"""An NFQUEUE reader for zcdoctor's tests (tests/path/nfqueue.rs, tests/guest/scenarios/
nfqueue.rs): binds netfilter queue QUEUE over a raw NETLINK_NETFILTER socket (nfnetlink_queue:
NFQNL_MSG_CONFIG with NFQNL_CFG_CMD_BIND, then copy mode NFQNL_COPY_PACKET, or --meta for
NFQNL_COPY_META; --gso sets NFQA_CFG_F_GSO; NFQA_CFG_F_FAIL_OPEN always, so a full queue
accepts instead of dropping), prints READY once the kernel acked the configuration, then reads
every queued packet and accepts it (one NFQNL_MSG_VERDICT_BATCH NF_ACCEPT per read), for at
most --seconds. At exit it prints `packets N bytes B` (payload bytes the kernel copied to it)."""
import argparse
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 2, 3
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META, NFQNL_COPY_PACKET = 1, 2
NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO = 1, 4
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_ACCEPT = 1


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def message(sock, msg_type, queue, attrs, seq, flags=NLM_F_REQUEST):
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + b"".join(attrs)
    hdr = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0)
    sock.send(hdr + body)


def acked(sock, seq):
    data = sock.recv(65536)
    _, kind, _, got, _ = struct.unpack_from("=IHHII", data)
    if kind != NLMSG_ERROR or got != seq:
        sys.exit(f"unexpected reply type {kind} to request {seq}")
    (err,) = struct.unpack_from("=i", data, 16)
    if err:
        sys.exit(f"nfnetlink_queue refused request {seq}: errno {-err}")


def configure(sock, args):
    message(sock, NFQNL_MSG_CONFIG, args.queue,
            [attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0))], 1,
            NLM_F_REQUEST | NLM_F_ACK)
    acked(sock, 1)
    mode = NFQNL_COPY_META if args.meta else NFQNL_COPY_PACKET
    flags = NFQA_CFG_F_FAIL_OPEN | (NFQA_CFG_F_GSO if args.gso else 0)
    message(sock, NFQNL_MSG_CONFIG, args.queue, [
        attr(NFQA_CFG_PARAMS, struct.pack("!IB", args.copy_range, mode)),
        attr(NFQA_CFG_MASK, struct.pack("!I", flags)),
        attr(NFQA_CFG_FLAGS, struct.pack("!I", flags)),
    ], 2, NLM_F_REQUEST | NLM_F_ACK)
    acked(sock, 2)


def packets(data):
    """(packet id, payload length) of each queued packet in one datagram."""
    off = 0
    while off + 16 <= len(data):
        length, kind, _, _, _ = struct.unpack_from("=IHHII", data, off)
        if length < 16:
            return
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            pid, size, a = None, 0, off + 20
            while a + 4 <= off + length:
                alen, akind = struct.unpack_from("=HH", data, a)
                if alen < 4:
                    break
                if akind & 0x3FFF == NFQA_PACKET_HDR:
                    (pid,) = struct.unpack_from("!I", data, a + 4)
                elif akind & 0x3FFF == NFQA_PAYLOAD:
                    size = alen - 4
                a += (alen + 3) & ~3
            if pid is not None:
                yield pid, size
        off += (length + 3) & ~3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("queue", type=int)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--copy-range", type=int, default=0xFFFF)
    p.add_argument("--meta", action="store_true")
    p.add_argument("--gso", action="store_true")
    args = p.parse_args()
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((0, 0))
    configure(sock, args)
    print("READY", flush=True)
    deadline = time.monotonic() + args.seconds
    count = total = 0
    seq = 3
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, min(0.5, deadline - time.monotonic())))
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError:  # ENOBUFS: the socket overran; the kernel accepted (fail-open) or dropped
            continue
        last = None
        for pid, size in packets(data):
            count, total, last = count + 1, total + size, pid
        if last is not None:
            message(sock, NFQNL_MSG_VERDICT_BATCH, args.queue,
                    [attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, last))], seq)
            seq += 1
    print(f"packets {count} bytes {total}", flush=True)


if __name__ == "__main__":
    main()
