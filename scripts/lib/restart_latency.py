"""Restart one container N times and measure, for each restart, the time from
Docker's `start` event (its timeNano) to the container's eth1 carrying an IPv4
address.

The moment the address appears is taken from the kernel's RTM_NEWADDR
notification, which is raised inside the container's new namespace and reaches
a host netlink socket with NETLINK_LISTEN_ALL_NSID (the veth gives that
namespace an id on the host). A thread that enters the new namespace then
confirms the address is really there; when no notification came (no namespace
id), the time that thread saw the address is used instead, which is later:
the observer itself needs the container's PID first.

Used by scripts/bench-restart. Talks to the Docker API on its unix socket and
enters namespaces with setns(2) on a thread of its own."""
import ctypes, fcntl, json, os, socket, struct, subprocess, sys, threading, time

CLONE_NEWNET = 0x40000000
SIOCGIFADDR = 0x8915
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def docker_get(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect("/var/run/docker.sock")
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: d\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


class EventWatch:
    """Follows /events for one container and records its `start` events."""

    def __init__(self, container_id):
        self.starts = []
        self.cond = threading.Condition()
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect("/var/run/docker.sock")
        filt = json.dumps({"container": [container_id], "event": ["start"]})
        q = "/events?filters=" + "".join(c if c.isalnum() else "%%%02X" % ord(c) for c in filt)
        self.sock.sendall(f"GET {q} HTTP/1.1\r\nHost: d\r\n\r\n".encode())
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        buf = b""
        while chunk := self.sock.recv(65536):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.strip()
                if line.startswith(b"{"):
                    with self.cond:
                        self.starts.append(json.loads(line)["timeNano"])
                        self.cond.notify_all()

    def wait_start(self, count, timeout=30):
        with self.cond:
            self.cond.wait_for(lambda: len(self.starts) >= count, timeout)
            return self.starts[count - 1] if len(self.starts) >= count else None


class AddressWatch:
    """RTM_NEWADDR notifications of every namespace that has an id on the host,
    with their arrival time: (time_ns, label, dotted address)."""

    SOL_NETLINK, NETLINK_LISTEN_ALL_NSID, RTMGRP_IPV4_IFADDR, RTM_NEWADDR = 270, 8, 0x10, 20

    def __init__(self):
        self.seen = []
        self.cond = threading.Condition()
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, self.RTMGRP_IPV4_IFADDR))
        self.sock.setsockopt(self.SOL_NETLINK, self.NETLINK_LISTEN_ALL_NSID, 1)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                continue
            now = time.time_ns()
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16:
                    break
                if kind == self.RTM_NEWADDR and length >= 24:
                    label, address = None, None
                    at = offset + 24
                    while at + 4 <= offset + length:
                        alen, atype = struct.unpack_from("=HH", data, at)
                        if alen < 4:
                            break
                        value = data[at + 4:at + alen]
                        if atype == 2 and len(value) == 4:
                            address = socket.inet_ntoa(value)
                        elif atype == 3:
                            label = value.split(b"\0", 1)[0].decode()
                        at += (alen + 3) & ~3
                    with self.cond:
                        self.seen.append((now, label, address))
                        self.cond.notify_all()
                offset += (length + 3) & ~3

    def first_after(self, nano, address, label="eth1", timeout=2):
        """The first notification of `address` on `label` after `nano`."""
        def find():
            return next((t for t, l, a in self.seen if t >= nano and a == address and l == label), None)
        with self.cond:
            self.cond.wait_for(lambda: find() is not None, timeout)
            return find()


def init_pid(container_id):
    """The container's init process, from its cgroup (cgroupfs driver) without
    asking dockerd, which is still busy finishing the restart; inspect otherwise."""
    for path in (f"/sys/fs/cgroup/pids/docker/{container_id}/cgroup.procs", f"/sys/fs/cgroup/docker/{container_id}/cgroup.procs"):
        try:
            pids = [int(p) for p in open(path).read().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid not in pids:
                return pid
    return docker_get(f"/containers/{container_id}/json")["State"]["Pid"]


def wait_address(pid, deadline):
    """On a thread that enters the namespace: subscribe to address events
    (RTMGRP_IPV4_IFADDR), then look once; block until eth1 has an IPv4 address.
    Blocking instead of polling keeps the measurement off the CPU it measures."""
    result = {}

    def has_address(s):
        try:
            reply = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("16s16x", b"eth1"))
            result["address"] = socket.inet_ntoa(reply[20:24])
            return True
        except OSError:
            return False

    def inside():
        # Every descriptor that refers to the namespace is closed before the
        # thread ends: one left open keeps the namespace (and the old veth)
        # alive after the container stops, and the next repair has to wait
        # for the kernel to tear that veth down.
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                result["error"] = ctypes.get_errno()
                return
        finally:
            os.close(fd)
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as nl, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            nl.bind((0, 0x10))
            while time.time() < deadline:
                if has_address(udp):
                    result["at"] = time.time_ns()
                    return
                nl.settimeout(max(0.001, deadline - time.time()))
                try:
                    nl.recv(65536)
                except (socket.timeout, OSError):
                    return

    t = threading.Thread(target=inside)
    t.start()
    t.join()
    return result.get("at"), result.get("address")


def main():
    name, n = sys.argv[1], int(sys.argv[2])
    cid = docker_get(f"/containers/{name}/json")["Id"]
    watch = EventWatch(cid)
    addresses = AddressWatch()
    time.sleep(0.2)
    latencies, failures, late = [], 0, 0
    for i in range(1, n + 1):
        # The CLI returns well after the start event: watch while it runs.
        restart = subprocess.Popen(["docker", "restart", "-t", "0", name], stdout=subprocess.DEVNULL)
        started = watch.wait_start(i)
        pid = init_pid(cid)
        seen, address = wait_address(pid, time.time() + 10) if started else (None, None)
        restart.wait()
        if seen is None:
            failures += 1
            continue
        notified = addresses.first_after(started, address)
        if notified is None:
            late += 1
        # Both threads wake on the same change when the observer was in
        # place in time; whichever the interpreter ran first saw it first.
        latencies.append((min(seen, notified or seen) - started) / 1e6)
        if os.environ.get("NETKEEP_LATENCY_DEBUG"):
            print(f"restart {i}: seen {(seen - started) / 1e6:.1f} ms, notified {((notified or 0) - started) / 1e6:.1f} ms", file=sys.stderr)
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, max(0, int(round(p / 100 * len(latencies) + 0.5)) - 1))]

    mode = "dhcp" if name.endswith("dhcp") else "static"
    if latencies:
        print(f"{mode:7s} n={len(latencies):3d}  p50 {pct(50):6.1f} ms  p90 {pct(90):6.1f} ms  p99 {pct(99):6.1f} ms  "
              f"max {latencies[-1]:6.1f} ms  min {latencies[0]:5.1f} ms  not repaired {failures}"
              + (f"  (observed late, no notification: {late})" if late else ""))
    else:
        print(f"{mode:7s} no restart was repaired ({failures} failures)")


main()
