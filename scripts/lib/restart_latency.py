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
import json, os, socket, subprocess, sys, threading, time

from benchlib import AddressWatch, docker_get, ifaddr, in_netns, init_pid, percentile


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


def wait_address(pid, deadline):
    """On a thread that enters the namespace: subscribe to address events
    (RTMGRP_IPV4_IFADDR), then look once; block until eth1 has an IPv4 address.
    Blocking instead of polling keeps the measurement off the CPU it measures.
    (in_netns closes its descriptor of the namespace before looking: one left
    open keeps the namespace, and the old veth, alive after the container
    stops, and the next repair has to wait for the kernel to tear it down.)"""
    def inside():
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as nl, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            nl.bind((0, 0x10))
            while time.time() < deadline:
                address = ifaddr(udp, "eth1")
                if address:
                    return time.time_ns(), address
                nl.settimeout(max(0.001, deadline - time.time()))
                try:
                    nl.recv(65536)
                except (socket.timeout, OSError):
                    return None, None
            return None, None

    try:
        return in_netns(pid, inside)
    except OSError:
        return None, None


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
        return percentile(latencies, p)

    mode = "dhcp" if name.endswith("dhcp") else "static"
    if latencies:
        print(f"{mode:7s} n={len(latencies):3d}  p50 {pct(50):6.1f} ms  p90 {pct(90):6.1f} ms  p99 {pct(99):6.1f} ms  "
              f"max {latencies[-1]:6.1f} ms  min {latencies[0]:5.1f} ms  not repaired {failures}"
              + (f"  (observed late, no notification: {late})" if late else ""))
    else:
        print(f"{mode:7s} no restart was repaired ({failures} failures)")


main()
