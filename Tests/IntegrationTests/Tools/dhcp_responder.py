#!/usr/bin/env python3
"""dhcp_responder.py - a deliberately bad DHCPv4 server for netkeep's integration tests.

It answers every DISCOVER with an OFFER and every REQUEST with an ACK, for
exactly the values it was told on the command line, however hostile they are
(lease time 0, T1/T2 0, a mask of /32, a router outside the subnet, ...), and
optionally with a wrong xid or a wrong chaddr. Tests use it to check that
netkeep refuses what it must refuse. Python 3 standard library only.

Usage (run inside the network namespace that owns IF; the test spawns it with
an argument array, no shell):

    ip netns exec NS python3 dhcp_responder.py --interface IF \
        --server-ip 10.250.7.1 --offer 10.250.7.50 --mask 255.255.255.0 \
        [--router 10.250.7.1] [--lease-time 3600] [--t1 N] [--t2 N] \
        [--mode normal|wrong-xid|wrong-chaddr|nak-first-select|rogue-ack|nak-requests|nak-all|garbage] \
        [--delay S] [--log FILE] \
        [--count-file FILE] [--max-seconds 300]

Behaviour:
  * One UDP socket bound to 0.0.0.0:67 with SO_REUSEADDR, SO_BROADCAST and
    SO_BINDTODEVICE=IF.
  * DISCOVER -> OFFER. REQUEST -> ACK, for the SELECTING state (option 54 is
    our --server-ip), INIT-REBOOT (option 50, no option 54) and also
    RENEWING/REBINDING (ciaddr set, no 50/54). A REQUEST whose option 54 names
    another server is logged and not answered (the client chose someone else).
    The ACK always carries --offer as yiaddr, whatever address was requested.
  * RELEASE, DECLINE and INFORM are logged only.
  * Every reply goes to 255.255.255.255:68 (the client has no address yet),
    with op=2, the request's flags and giaddr, siaddr=--server-ip, the magic
    cookie, option 53 first, then 54, 51, 1, [3], [58], [59], 255, padded to
    the 300-byte BOOTP minimum.
  * --mode wrong-xid answers with xid+1 (mod 2**32); --mode wrong-chaddr with
    the last byte of the client hardware address (byte hlen-1) flipped (^0xff).
  * --mode nak-first-select answers the first SELECTING REQUEST (the one
    after an OFFER) with a NAK, as dnsmasq does when it offered the same
    address to two clients at once; later REQUESTs are acknowledged. A NAK
    carries only options 53 and 54 and yiaddr 0 (RFC 2131 table 3).
  * --mode rogue-ack answers every REQUEST, whoever it names in option 54 and
    whatever it asks for, with an ACK of --offer from --server-ip, and no
    DISCOVER: a server the client did not select, for an address it did not
    request.
  * --mode nak-requests offers and acknowledges a SELECTING REQUEST, and
    NAKs every other (INIT-REBOOT, RENEWING, REBINDING): a lease it no longer
    honours. --mode nak-all NAKs every REQUEST and answers no DISCOVER.
  * --mode garbage answers DISCOVER and REQUEST with a datagram that is no
    DHCP message (its magic cookie broken).
  * --delay S waits S seconds before each reply.
  * Anything malformed (short, op != 1, bad cookie, hlen > 16, truncated or
    overrunning options, no/unknown option 53) is ignored: it does not count
    and is not answered; it is logged as a `drop` line.

Output:
  * stdout: exactly one line `ready` (flushed) once the socket is bound.
  * stderr: diagnostics only.
  * --log FILE (appended, flushed per line), one line per packet:
        recv DISCOVER xid=0x1a2b3c4d chaddr=02:42:ac:11:00:02 yiaddr=0.0.0.0
        sent OFFER xid=0x1a2b3c4d chaddr=02:42:ac:11:00:02 yiaddr=10.250.7.50
        drop reason=bad-cookie len=300
    (xid and chaddr of `sent` lines are what went on the wire, so in the
    wrong-* modes they differ from the `recv` line on purpose.)
  * --count-file FILE: "0" at start, then after each well-formed DHCP packet
    received the count so far, as a decimal followed by a newline, written to
    FILE.tmp and renamed over FILE (atomic for a poller).

Exit: 0 on SIGTERM/SIGINT or after --max-seconds (default 300); 2 on bad
arguments; 1 if the socket cannot be set up.
"""

import argparse
import ipaddress
import os
import select
import signal
import socket
import struct
import sys
import time

# SO_BINDTODEVICE is not exported by every Python build's socket module.
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)

MAGIC_COOKIE = b"\x63\x82\x53\x63"
BOOTP_FIXED = 236            # op..file, before the cookie
MIN_PACKET = BOOTP_FIXED + 4  # fixed part + cookie
MIN_REPLY = 300              # BOOTP minimum; some clients insist on it
MAX_DATAGRAM = 4096

# Message types (option 53).
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
TYPE_NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE",
              5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}

# Options used here.
OPT_PAD, OPT_END = 0, 255
OPT_MASK, OPT_ROUTER = 1, 3
OPT_REQUESTED_IP, OPT_LEASE, OPT_MSG_TYPE, OPT_SERVER_ID = 50, 51, 53, 54
OPT_T1, OPT_T2 = 58, 59

stop_requested = False


def on_signal(signum, frame):
    """SIGTERM/SIGINT: ask the main loop to stop (it polls every 0.2 s)."""
    global stop_requested
    stop_requested = True


def ipv4(text):
    """argparse type: a dotted-quad IPv4 address, returned as 4 bytes."""
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise argparse.ArgumentTypeError("not an IPv4 address: %r" % text)


def u32(text):
    """argparse type: an unsigned 32-bit integer (0 allowed on purpose)."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError("not a decimal integer: %r" % text)
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError("out of range 0..4294967295: %r" % text)
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description="Deliberately bad DHCPv4 server for tests.")
    p.add_argument("--interface", required=True, help="interface to bind to (SO_BINDTODEVICE)")
    p.add_argument("--server-ip", required=True, type=ipv4, help="own address: option 54 and siaddr")
    p.add_argument("--offer", required=True, type=ipv4, help="yiaddr offered and acknowledged")
    p.add_argument("--mask", required=True, type=ipv4, help="option 1")
    p.add_argument("--router", type=ipv4, help="option 3 (omitted when not given)")
    p.add_argument("--lease-time", type=u32, default=3600, help="option 51 (may be 0)")
    p.add_argument("--t1", type=u32, help="option 58 (omitted when not given; may be 0)")
    p.add_argument("--t2", type=u32, help="option 59 (omitted when not given; may be 0)")
    p.add_argument("--mode", choices=("normal", "wrong-xid", "wrong-chaddr", "nak-first-select", "rogue-ack", "nak-requests",
                                      "nak-all", "garbage"), default="normal")
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each reply")
    p.add_argument("--log", help="append one line per packet received/sent")
    p.add_argument("--count-file", help="rewrite with the number of DHCP packets received")
    p.add_argument("--max-seconds", type=float, default=300.0, help="exit by itself after this long")
    args = p.parse_args(argv)
    if len(args.interface.encode()) >= 16:  # IFNAMSIZ including the NUL
        p.error("interface name too long: %r" % args.interface)
    if not args.max_seconds > 0:
        p.error("--max-seconds must be positive")
    return args


def fmt_ip(b):
    return socket.inet_ntoa(b)


def fmt_mac(b):
    return ":".join("%02x" % x for x in b)


def parse_options(data):
    """Parse the options area after the cookie into {code: bytes}.

    Returns None if the area is malformed (an option running past the end, or
    no END option). Repeated options are concatenated (RFC 3396)."""
    options = {}
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == OPT_PAD:
            continue
        if code == OPT_END:
            return options
        if i >= n:
            return None
        length = data[i]
        i += 1
        if i + length > n:
            return None
        options[code] = options.get(code, b"") + data[i:i + length]
        i += length
    return None  # no END option


def parse_packet(data):
    """Return (fields dict, None) for a well-formed client message, or
    (None, reason) for anything else."""
    if len(data) < MIN_PACKET:
        return None, "short"
    op, htype, hlen, _hops = data[0], data[1], data[2], data[3]
    if op != 1:
        return None, "not-request"
    if hlen == 0 or hlen > 16:
        return None, "bad-hlen"
    if data[BOOTP_FIXED:MIN_PACKET] != MAGIC_COOKIE:
        return None, "bad-cookie"
    options = parse_options(data[MIN_PACKET:])
    if options is None:
        return None, "bad-options"
    msg_type = options.get(OPT_MSG_TYPE, b"")
    if len(msg_type) != 1 or msg_type[0] not in TYPE_NAMES:
        return None, "no-message-type"
    xid, = struct.unpack("!I", data[4:8])
    flags, = struct.unpack("!H", data[10:12])
    return {
        "type": msg_type[0],
        "htype": htype,
        "hlen": hlen,
        "xid": xid,
        "flags": flags,
        "ciaddr": data[12:16],
        "yiaddr": data[16:20],
        "giaddr": data[24:28],
        "chaddr16": data[28:44],           # the whole 16-byte field
        "chaddr": data[28:28 + hlen],       # the meaningful part
        "options": options,
    }, None


def option(code, value):
    """One option TLV (values here are always < 256 bytes)."""
    return bytes((code, len(value))) + value


def build_reply(args, req, reply_type):
    """Build an OFFER/ACK/NAK for request `req`, applying the --mode defect."""
    xid = req["xid"]
    chaddr = bytearray(req["chaddr16"])
    if args.mode == "wrong-xid":
        xid = (xid + 1) & 0xFFFFFFFF
    elif args.mode == "wrong-chaddr":
        chaddr[req["hlen"] - 1] ^= 0xFF
    head = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        2, req["htype"], req["hlen"], 0,   # op=BOOTREPLY, htype, hlen, hops
        xid, 0, req["flags"],              # xid, secs, flags (as the client sent them)
        b"\0\0\0\0",                       # ciaddr
        b"\0\0\0\0" if reply_type == NAK else args.offer,  # yiaddr
        args.server_ip,                    # siaddr
        req["giaddr"],                     # giaddr
        bytes(chaddr), b"", b"")           # chaddr, sname, file
    opts = option(OPT_MSG_TYPE, bytes((reply_type,)))
    opts += option(OPT_SERVER_ID, args.server_ip)
    if reply_type == NAK:
        opts += bytes((OPT_END,))
        packet = head + MAGIC_COOKIE + opts
        return packet + b"\0" * max(0, MIN_REPLY - len(packet)), xid, bytes(chaddr[:req["hlen"]])
    opts += option(OPT_LEASE, struct.pack("!I", args.lease_time))
    opts += option(OPT_MASK, args.mask)
    if args.router is not None:
        opts += option(OPT_ROUTER, args.router)
    if args.t1 is not None:
        opts += option(OPT_T1, struct.pack("!I", args.t1))
    if args.t2 is not None:
        opts += option(OPT_T2, struct.pack("!I", args.t2))
    opts += bytes((OPT_END,))
    packet = head + MAGIC_COOKIE + opts
    if len(packet) < MIN_REPLY:
        packet += b"\0" * (MIN_REPLY - len(packet))
    return packet, xid, bytes(chaddr[:req["hlen"]])


selecting_naks = 0


def answer_type(args, req):
    """What to answer to `req`: OFFER, ACK, NAK or None (log only)."""
    global selecting_naks
    t = req["type"]
    if args.mode == "rogue-ack":
        return ACK if t == REQUEST else None
    if args.mode == "nak-all":
        return NAK if t == REQUEST else None
    if t == DISCOVER:
        return OFFER
    if t == REQUEST and args.mode == "nak-requests" and req["options"].get(OPT_SERVER_ID) is None:
        return NAK
    if t == REQUEST:
        server_id = req["options"].get(OPT_SERVER_ID)
        if server_id is not None:
            # SELECTING: answer only if the client selected us.
            if server_id != args.server_ip:
                return None
            if args.mode == "nak-first-select" and selecting_naks == 0:
                selecting_naks += 1
                return NAK
            return ACK
        if OPT_REQUESTED_IP in req["options"]:
            return ACK  # INIT-REBOOT
        if req["ciaddr"] != b"\0\0\0\0":
            return ACK  # RENEWING / REBINDING
        return None     # a REQUEST with nothing to request: malformed, ignore
    return None         # RELEASE, DECLINE, INFORM, or a server message type


class Recorder:
    """The --log file and the --count-file, both optional."""

    def __init__(self, log_path, count_path):
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.count_path = count_path
        self.count = 0
        self.write_count()

    def line(self, text):
        if self.log:
            self.log.write(text + "\n")  # line-buffered: flushed per line

    def write_count(self):
        if not self.count_path:
            return
        tmp = "%s.tmp.%d" % (self.count_path, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % self.count)
        os.replace(tmp, self.count_path)

    def received(self):
        self.count += 1
        self.write_count()

    def close(self):
        if self.log:
            self.log.close()


def open_socket(interface):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode() + b"\0")
    s.bind(("0.0.0.0", 67))
    s.setblocking(False)
    return s


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sock = open_socket(args.interface)
    except OSError as e:
        print("dhcp_responder: cannot open socket on %s: %s" % (args.interface, e), file=sys.stderr)
        return 1
    rec = Recorder(args.log, args.count_file)
    deadline = time.monotonic() + args.max_seconds
    sys.stdout.write("ready\n")
    sys.stdout.flush()

    try:
        # Bounded: ends on a signal or at the deadline.
        while not stop_requested:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                print("dhcp_responder: --max-seconds reached, exiting", file=sys.stderr)
                break
            try:
                readable, _, _ = select.select([sock], [], [], min(0.2, remaining))
            except InterruptedError:
                continue
            if not readable:
                continue
            try:
                data, _peer = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                print("dhcp_responder: recv: %s" % e, file=sys.stderr)
                continue

            req, reason = parse_packet(data)
            if req is None:
                rec.line("drop reason=%s len=%d" % (reason, len(data)))
                continue
            rec.line("recv %s xid=0x%08x chaddr=%s yiaddr=%s" % (
                TYPE_NAMES[req["type"]], req["xid"], fmt_mac(req["chaddr"]), fmt_ip(req["yiaddr"])))
            rec.received()

            reply_type = answer_type(args, req)
            if reply_type is None:
                continue
            packet, xid, chaddr = build_reply(args, req, reply_type)
            if args.mode == "garbage":
                packet = packet[:BOOTP_FIXED] + b"\xde\xad\xbe\xef" + packet[MIN_PACKET:]
            if args.delay > 0:
                time.sleep(args.delay)
            try:
                sock.sendto(packet, ("255.255.255.255", 68))
            except OSError as e:
                print("dhcp_responder: send: %s" % e, file=sys.stderr)
                rec.line("fail %s xid=0x%08x error=%s" % (TYPE_NAMES[reply_type], xid, e.errno))
                continue
            rec.line("sent %s xid=0x%08x chaddr=%s yiaddr=%s" % (
                TYPE_NAMES[reply_type], xid, fmt_mac(chaddr), fmt_ip(b"\0\0\0\0" if reply_type == NAK else args.offer)))
    finally:
        sock.close()
        rec.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
