#!/usr/bin/env python3
"""slow_dhcp.py - a DHCPv4 server for scripts/bench that is slow per new lease
but answers many clients at once.

dnsmasq pings an address for about 3 s before it first offers it, and answers
nothing else while it waits: 20 new clients at once are served one after
another. This server checks each new address for --offer-delay seconds too,
but the checks overlap: 20 new clients at once all get their OFFER about
--offer-delay seconds after their DISCOVER. Python 3 standard library only;
one thread, a poll loop and a heap of scheduled OFFERs.

    ip netns exec NS python3 slow_dhcp.py --interface eth0 --server-ip 10.3.0.1 \
        --pool-start 10.3.0.100 --pool-end 10.3.3.250 --mask 255.255.0.0 \
        [--router 10.3.0.1] [--lease-time 3600] [--offer-delay 3.0] \
        [--log FILE] [--pid-file FILE] [--max-seconds 600]

  * DISCOVER: the client (chaddr) gets an address from the pool (the same one
    while it holds it). A new address is offered --offer-delay s later; a
    DISCOVER repeated meanwhile does not restart the clock (the OFFER answers
    its latest xid). An address already offered or acknowledged is offered at once.
  * REQUEST for the address this client holds: ACK at once - SELECTING (option
    54 is --server-ip, option 50), INIT-REBOOT (option 50, no 54) or
    RENEWING/REBINDING (ciaddr). SELECTING for another server: ignored.
    Anything else: NAK.
  * RELEASE of the address the client holds frees it. DECLINE, INFORM: logged only.
  * Replies go to 255.255.255.255:68 on --interface; anything malformed is ignored.
  * stdout: `ready` once the socket is bound. --log: one line per packet,
        <time.monotonic()> recv DISCOVER xid=0x1a2b3c4d chaddr=02:42:ac:11:00:02 ip=0.0.0.0
        <time.monotonic()> sent OFFER xid=0x1a2b3c4d chaddr=02:42:ac:11:00:02 ip=10.3.0.100
    (CLOCK_MONOTONIC is the host's in every network namespace: the bench
    compares these times with its own.)
  * Exits 0 on SIGTERM/SIGINT or after --max-seconds.
"""
import argparse, heapq, ipaddress, os, select, signal, socket, struct, sys, time

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
COOKIE = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}
ZERO = b"\0\0\0\0"
stop = False


def parse(data):
    """(fields, options) of a well-formed BOOTREQUEST with option 53, else None."""
    if len(data) < 240 or data[0] != 1 or not 0 < data[2] <= 16 or data[236:240] != COOKIE:
        return None
    opts, i = {}, 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        if i + 1 >= len(data) or i + 2 + data[i + 1] > len(data):
            return None
        opts[data[i]] = opts.get(data[i], b"") + data[i + 2:i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    if i >= len(data) or len(opts.get(53, b"")) != 1 or opts[53][0] not in NAMES:
        return None
    xid, flags = struct.unpack("!I2xH", data[4:12])
    return {"type": opts[53][0], "htype": data[1], "hlen": data[2], "xid": xid, "flags": flags, "ciaddr": data[12:16],
            "giaddr": data[24:28], "chaddr16": data[28:44], "chaddr": data[28:28 + data[2]], "opts": opts}


class Server:
    def __init__(self, a):
        self.a = a
        self.server_id = socket.inet_aton(a.server_ip)
        start, end = int(ipaddress.IPv4Address(a.pool_start)), int(ipaddress.IPv4Address(a.pool_end))
        self.free = list(range(end, start - 1, -1))  # popped from the end: lowest address first
        self.held = {}       # chaddr -> address (4 bytes)
        self.checked = set()  # chaddrs whose address was offered or acknowledged: no more waiting
        self.pending = {}    # chaddr -> the latest DISCOVER while its OFFER waits
        self.heap = []       # (due, sequence, chaddr) of the OFFERs waiting
        self.seq = 0
        self.log = open(a.log, "a", buffering=1) if a.log else None
        s = self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, a.interface.encode() + b"\0")
        s.bind(("0.0.0.0", 67))
        s.setblocking(False)

    def note(self, what, kind, req, ip):
        if self.log:
            mac = ":".join(f"{b:02x}" for b in req["chaddr"])
            self.log.write(f"{time.monotonic():.6f} {what} {NAMES[kind]} xid=0x{req['xid']:08x} chaddr={mac} ip={socket.inet_ntoa(ip)}\n")

    def reply(self, req, kind, yiaddr):
        """Sends an OFFER, ACK or NAK for `req` to 255.255.255.255:68."""
        ip = ZERO if kind == NAK else yiaddr
        head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 2, req["htype"], req["hlen"], 0, req["xid"], 0, req["flags"],
                           req["ciaddr"] if kind == ACK else ZERO, ip, ZERO, req["giaddr"], req["chaddr16"], b"", b"")
        opts = bytes((53, 1, kind, 54, 4)) + self.server_id
        if kind != NAK:
            lease = self.a.lease_time
            opts += bytes((51, 4)) + struct.pack("!I", lease) + bytes((1, 4)) + socket.inet_aton(self.a.mask)
            if self.a.router:
                opts += bytes((3, 4)) + socket.inet_aton(self.a.router)
            opts += bytes((58, 4)) + struct.pack("!I", lease // 2) + bytes((59, 4)) + struct.pack("!I", lease * 7 // 8)
        packet = head + COOKIE + opts + b"\xff"
        try:
            self.sock.sendto(packet.ljust(300, b"\0"), ("255.255.255.255", 68))
            self.note("sent", kind, req, ip)
        except OSError as e:
            print(f"slow_dhcp: send {NAMES[kind]}: {e}", file=sys.stderr)

    def handle(self, req):
        kind, mac, opts = req["type"], req["chaddr"], req["opts"]
        self.note("recv", kind, req, req["ciaddr"])
        held = self.held.get(mac)
        if kind == DISCOVER:
            if held is None:
                if not self.free:
                    return  # pool exhausted: no OFFER, as a full server does
                held = self.held[mac] = struct.pack("!I", self.free.pop())
            if mac in self.checked:
                self.reply(req, OFFER, held)
            else:
                if mac not in self.pending:  # a repeated DISCOVER does not restart the clock
                    self.seq += 1
                    heapq.heappush(self.heap, (time.monotonic() + self.a.offer_delay, self.seq, mac))
                self.pending[mac] = req
        elif kind == REQUEST:
            server = opts.get(54)
            if server is not None and server != self.server_id:
                return  # the client chose another server
            if server is not None or 50 in opts:
                asked = opts.get(50)  # SELECTING, INIT-REBOOT
            elif req["ciaddr"] != ZERO:
                asked = req["ciaddr"]  # RENEWING, REBINDING
            else:
                return  # nothing asked for: malformed
            if held is not None and asked == held:
                self.checked.add(mac)
                self.reply(req, ACK, held)
            else:
                self.reply(req, NAK, ZERO)
        elif kind == RELEASE and held is not None and req["ciaddr"] == held:
            del self.held[mac]
            self.checked.discard(mac)
            self.pending.pop(mac, None)
            self.free.append(struct.unpack("!I", held)[0])

    def due(self, now):
        """Sends every OFFER whose check has ended."""
        while self.heap and self.heap[0][0] <= now:
            _, _, mac = heapq.heappop(self.heap)
            req = self.pending.pop(mac, None)
            if req is not None and mac in self.held:
                self.checked.add(mac)
                self.reply(req, OFFER, self.held[mac])

    def run(self, max_seconds):
        deadline = time.monotonic() + max_seconds
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while not stop and time.monotonic() < deadline:
            now = time.monotonic()
            wait = min(0.2, deadline - now, max(0.0, self.heap[0][0] - now) if self.heap else 0.2)
            try:
                ready = poller.poll(wait * 1000)
            except InterruptedError:
                continue
            while ready:
                try:
                    data = self.sock.recv(4096)
                except OSError:  # nothing more waiting
                    break
                req = parse(data)
                if req is not None:
                    self.handle(req)
            self.due(time.monotonic())


def main(argv):
    p = argparse.ArgumentParser(description="A DHCPv4 server that takes --offer-delay s per new lease, in parallel.")
    p.add_argument("--interface", required=True)
    p.add_argument("--server-ip", required=True)
    p.add_argument("--pool-start", required=True)
    p.add_argument("--pool-end", required=True)
    p.add_argument("--mask", default="255.255.255.0")
    p.add_argument("--router")
    p.add_argument("--lease-time", type=int, default=3600)
    p.add_argument("--offer-delay", type=float, default=3.0)
    p.add_argument("--log")
    p.add_argument("--pid-file")
    p.add_argument("--max-seconds", type=float, default=600.0)
    a = p.parse_args(argv)

    def on_signal(*_):
        global stop
        stop = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = Server(a)
    except (OSError, ValueError) as e:
        print(f"slow_dhcp: cannot start on {a.interface}: {e}", file=sys.stderr)
        return 1
    if a.pid_file:
        with open(a.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    print("ready", flush=True)
    server.run(a.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
