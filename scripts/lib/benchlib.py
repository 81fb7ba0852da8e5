"""Helpers shared by the bench scripts (scripts/bench, scripts/bench-restart):
commands, the bench's own network, containers, the daemon started with
NOTIFY_SOCKET, namespaces, Docker events, the journal and percentiles.

Everything a bench creates is named nkbench-<run tag>-..., removed by the row
that made it (also on failure), and only processes the bench started are
stopped, by PID."""
import ctypes, fcntl, json, os, re, select, signal, socket, statistics, struct, subprocess, sys, tempfile, threading, time, uuid
from concurrent.futures import ThreadPoolExecutor

NETKEEP = os.environ.get("NETKEEP_BIN", "netkeep")
# Benches run several daemons at once: none serves the Docker plugin socket unless asked to.
os.environ.setdefault("NETKEEP_PLUGIN_SOCKET", "none")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(ROOT, "scripts", "testbed")
TESTBED_RUN = os.environ.get("NETKEEP_TESTBED_DIR", "/run/netkeep-testbed")
TESTBED_BRIDGE = os.environ.get("NETKEEP_TESTBED_BRIDGE", "nk-br0")
IMAGE = "netkeep-test/busybox"
BR = "nk-bench0"
NS = "nk-benchdhcp"
TAG = uuid.uuid4().hex[:6]
CLONE_NEWNET = 0x40000000
SIOCGIFADDR = 0x8915
libc = ctypes.CDLL("libc.so.6", use_errno=True)
_work = None


def work():
    """The run's directory (state files, daemon logs, the bench dnsmasq's leases)."""
    global _work
    if _work is None:
        _work = tempfile.mkdtemp(prefix="netkeep-bench-")
    return _work


def sh(*args, check=True, env=None, timeout=600):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(list(args), capture_output=True, text=True, env=e, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def log(text):
    print(f"bench: {text}", file=sys.stderr, flush=True)


def parallel_map(fn, items, workers=4):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def wait_until(condition, timeout, what, interval=0.1):
    """Polls `condition` until it returns something truthy; raises after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def percentile(sorted_values, p):
    """Nearest rank (the value below which p % of the samples lie)."""
    n = len(sorted_values)
    return sorted_values[min(n - 1, max(0, int(round(p / 100 * n + 0.5)) - 1))]


def median_time(fn, runs=5):
    """Median wall time of fn() over `runs` calls, in ms."""
    samples = []
    for _ in range(runs):
        t0 = time.monotonic()
        fn()
        samples.append((time.monotonic() - t0) * 1000)
    return statistics.median(samples)


class BenchNetwork:
    """nk-bench0 with a DHCP server namespace of its own: dnsmasq with a
    10.2.0.0/16 pool of about 64,000 addresses (and a lease limit above the
    default 1000), --no-ping, its lease file in the run's directory. The
    test bed's own dnsmasq (nk-br0, 10.1.2.100-250: 151 addresses) is left alone."""

    def __enter__(self):
        w = work()
        sh("ovs-vsctl", "--may-exist", "add-br", BR, "--", "set", "bridge", BR, "datapath_type=netdev")
        sh("ip", "netns", "add", NS, check=False)
        sh("ip", "link", "add", "nkbdhcp", "type", "veth", "peer", "name", "nkbdhcp-c", check=False)
        sh("ip", "link", "set", "nkbdhcp-c", "netns", NS, check=False)
        sh("ip", "-n", NS, "link", "set", "nkbdhcp-c", "name", "eth0", check=False)
        sh("ip", "-n", NS, "link", "set", "eth0", "up")
        sh("ip", "-n", NS, "addr", "replace", "10.2.0.1/16", "dev", "eth0")
        sh("ip", "netns", "exec", NS, "ethtool", "-K", "eth0", "tx", "off")
        sh("ip", "link", "set", "nkbdhcp", "up")
        sh("ethtool", "-K", "nkbdhcp", "tx", "off")
        sh("ovs-vsctl", "--may-exist", "add-port", BR, "nkbdhcp")
        sh("ip", "netns", "exec", NS, "dnsmasq", "--port=0", "--interface=eth0", "--bind-interfaces", "--no-ping",
           "--dhcp-range=10.2.0.10,10.2.255.250,255.255.0.0,1h", "--dhcp-lease-max=70000",
           "--dhcp-option=option:router,10.2.0.1",
           f"--dhcp-leasefile={w}/leases", f"--pid-file={w}/dnsmasq.pid", f"--log-facility={w}/dnsmasq.log")
        return self

    def __exit__(self, *exc):
        try:
            os.kill(int(open(f"{work()}/dnsmasq.pid").read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        sh("ovs-vsctl", "--if-exists", "del-br", BR, check=False)
        sh("ip", "link", "del", "nkbdhcp", check=False)
        sh("ip", "netns", "del", NS, check=False)


class SlowDHCPNetwork:
    """A bridge of its own (nk-slow0) with a server namespace (nk-slowdhcp,
    10.3.0.1/16 on a veth into the bridge) running slow_dhcp.py: each new
    lease takes `offer_delay` s (as dnsmasq's ping does), but the server
    answers every client meanwhile. Its log (one line per packet, with
    time.monotonic() stamps comparable to the bench's) is in the run's
    directory; offers() reads it. On exit the server is stopped by its PID,
    then the bridge, the veth and the namespace are deleted. The names
    collide neither with BenchNetwork (nk-bench0, nk-benchdhcp) nor with the
    test bed (nk-br0, nk-dhcpsrv)."""

    BRIDGE, NS, VETH = "nk-slow0", "nk-slowdhcp", "nkslow"
    SERVER = os.path.join(ROOT, "scripts", "lib", "slow_dhcp.py")

    def __init__(self, offer_delay=3.0):
        self.offer_delay = offer_delay
        tag = uuid.uuid4().hex[:6]
        self.log_path, self.pid_path = f"{work()}/slow-dhcp-{tag}.log", f"{work()}/slow-dhcp-{tag}.pid"
        self.proc = None

    def __enter__(self):
        br, ns, veth = self.BRIDGE, self.NS, self.VETH
        try:
            sh("ovs-vsctl", "--may-exist", "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev")
            sh("ip", "netns", "del", ns, check=False)  # left by an earlier run, with its veth
            sh("ip", "link", "del", veth, check=False)
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}-c")
            sh("ip", "link", "set", f"{veth}-c", "netns", ns)
            sh("ip", "-n", ns, "link", "set", f"{veth}-c", "name", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "addr", "replace", "10.3.0.1/16", "dev", "eth0")
            sh("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off")
            sh("ip", "link", "set", veth, "up")
            sh("ethtool", "-K", veth, "tx", "off")
            sh("ovs-vsctl", "--may-exist", "add-port", br, veth)
            err = open(f"{self.log_path}.stderr", "w")
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, "python3", self.SERVER, "--interface", "eth0", "--server-ip", "10.3.0.1",
                 "--pool-start", "10.3.0.100", "--pool-end", "10.3.15.250", "--mask", "255.255.0.0", "--router", "10.3.0.1",
                 "--lease-time", "3600", "--offer-delay", str(self.offer_delay), "--log", self.log_path,
                 "--pid-file", self.pid_path, "--max-seconds", "1800"], stdout=subprocess.PIPE, stderr=err, text=True)
            err.close()
            ready, _, _ = select.select([self.proc.stdout], [], [], 10)
            if not ready or self.proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"slow_dhcp.py did not get ready (see {self.log_path}.stderr)")
            return self
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc):
        if self.proc is not None:
            pids = {self.proc.pid}
            try:  # the same process unless `ip netns exec` forked
                pids.add(int(open(self.pid_path).read()))
            except (OSError, ValueError):
                pass
            for pid in pids:
                if alive(pid):
                    os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            wait_until(lambda: not any(alive(p) for p in pids), 5, "slow_dhcp.py to end")
        sh("ovs-vsctl", "--if-exists", "del-br", self.BRIDGE, check=False)
        sh("ip", "link", "del", self.VETH, check=False)
        sh("ip", "netns", "del", self.NS, check=False)

    def offers(self, since, macs=None):
        """{mac: (first DISCOVER, first OFFER, first ACK)} in time.monotonic()
        seconds, each None when absent, for the packets at or after `since`
        (macs None: every client in the log; only the bench's talk to it)."""
        seen = {m: [None, None, None] for m in macs or ()}
        try:
            lines = open(self.log_path).read().splitlines()
        except OSError:
            return {}
        for line in lines:
            f = line.split()
            if len(f) < 5 or not f[4].startswith("chaddr="):
                continue
            t, mac = float(f[0]), f[4][len("chaddr="):]
            slot = {("recv", "DISCOVER"): 0, ("sent", "OFFER"): 1, ("sent", "ACK"): 2}.get((f[1], f[2]))
            if macs is None and t >= since:
                seen.setdefault(mac, [None, None, None])
            if t >= since and mac in seen and slot is not None and seen[mac][slot] is None:
                seen[mac][slot] = t
        return {m: tuple(v) for m, v in seen.items()}


ALL_CONTAINERS = []


class Containers:
    """n containers nkbench-<tag>-<prefix>-<i> (--net=none, restart policy
    always, so that they come back after the simulated reboot)."""

    def __init__(self, prefix, n, workers=4):
        self.names = [f"nkbench-{TAG}-{prefix}-{i}" for i in range(n)]
        ALL_CONTAINERS.append(self)
        parallel_map(lambda name: sh("docker", "run", "-d", "--net=none", "--restart=always", "--name", name, IMAGE,
                                     "sleep", "1000000"), self.names, workers)

    def pids(self):
        out = []
        for i in range(0, len(self.names), 100):
            out += sh("docker", "inspect", "-f", "{{.Name}} {{.State.Pid}}", *self.names[i:i + 100]).stdout.split("\n")
        return {l.split()[0].lstrip("/"): int(l.split()[1]) for l in out if l.strip()}

    def wait_running(self, timeout=600):
        wait_until(lambda: all(p > 0 for p in self.pids().values()), timeout, "the containers to run again", 0.5)

    def remove(self):
        parallel_map(lambda i: sh("docker", "rm", "-f", *self.names[i:i + 50], check=False), range(0, len(self.names), 50), 2)


def in_netns(pid, fn):
    """fn() on a thread of its own inside the network namespace of `pid`.
    The descriptor of the namespace is closed before fn runs, and the thread
    ends with fn: nothing keeps the namespace (and its veths) alive after the
    container stops."""
    result = {}

    def inside():
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        except OSError as e:
            result["error"] = e
            return
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                result["error"] = OSError(ctypes.get_errno(), "setns")
                return
        finally:
            os.close(fd)
        try:
            result["value"] = fn()
        except Exception as e:  # noqa: BLE001 - handed to the caller
            result["error"] = e

    t = threading.Thread(target=inside)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def ifaddr(udp, ifname):
    """The primary IPv4 address of ifname (SIOCGIFADDR on a UDP socket), or None."""
    try:
        reply = fcntl.ioctl(udp.fileno(), SIOCGIFADDR, struct.pack("16s16x", ifname.encode()))
        return socket.inet_ntoa(reply[20:24])
    except OSError:
        return None


def addresses_of(pid, ifnames=("eth1",)):
    """{ifname: IPv4 address or None} inside the namespace of pid (None for all when it cannot be entered)."""
    def look():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            return {i: ifaddr(udp, i) for i in ifnames}
    try:
        return in_netns(pid, look)
    except OSError:
        return {i: None for i in ifnames}


def address_of(pid, ifname="eth1"):
    return addresses_of(pid, (ifname,))[ifname]


def notify_socket():
    path = f"{work()}/notify-{uuid.uuid4().hex[:6]}.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    return s, path


def alive(pid):
    """Running, not a zombie (PID 1 here does not reap)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class Daemon:
    """`netkeep daemon --foreground -v` with NOTIFY_SOCKET pointed at a socket
    of the bench's and WATCHDOG_USEC as units/netkeep.service sets it
    (WatchdogSec=30s); start() returns once READY=1 came (seconds since the
    process was started). Its log stays in the run's directory. stop() sends
    SIGTERM to this process only (SIGKILL after 30 s).

    Without WATCHDOG_USEC the daemon's start-budget race is decided by its
    watchdog feeder, which returns at once when there is no watchdog: it then
    logs "the first reconcile takes longer than 45 s" however short the pass
    was, and READY=1 does not wait for the pass."""

    def __init__(self, state, name, binary=None, extra=()):
        self.state, self.binary, self.extra = state, binary or NETKEEP, list(extra)
        self.log_path = f"{work()}/daemon-{name}.log"
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def spawn(self, env):
        """Starts the daemon process, its output into the log file."""
        out = open(self.log_path, "w")
        self.proc = subprocess.Popen([self.binary, "daemon", "--foreground", "-v", "--state-dir", self.state, *self.extra],
                                     env=env, stdout=out, stderr=out)
        out.close()

    def start(self, timeout=300):
        sock, path = notify_socket()
        t0 = time.monotonic()
        self.spawn({**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
        try:
            deadline = t0 + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the daemon exited with {self.proc.returncode} before READY=1 (log: {self.log_path})")
                sock.settimeout(min(1.0, max(0.01, deadline - time.monotonic())))
                try:
                    if b"READY=1" in sock.recv(4096):
                        return time.monotonic() - t0
                except TimeoutError:
                    continue
            self.stop()
            raise RuntimeError(f"the daemon sent no READY=1 within {timeout} s (is NETKEEP_BIN up to date? log: {self.log_path})")
        finally:
            sock.close()
            os.unlink(path)

    def usage(self, seconds):
        """CPU % over `seconds` (a measurement window, not a wait), then RSS and peak RSS in MiB."""
        tick = os.sysconf("SC_CLK_TCK")

        def cpu():
            f = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()
            return int(f[11]) + int(f[12])

        c0, t0 = cpu(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu(), time.monotonic()
        status = open(f"/proc/{self.pid}/status").read()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
        return 100 * (c1 - c0) / tick / (t1 - t0), rss, peak

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def docker_get(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect("/var/run/docker.sock")
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: d\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def docker_events(since, event):
    """[(container name, timeNano)] of the container events `event` since `since`
    (epoch seconds) until now, from `docker events --format '{{json .}}'`."""
    r = sh("docker", "events", "--since", f"{since:.6f}", "--until", f"{time.time():.6f}",
           "--filter", "type=container", "--filter", f"event={event}", "--format", "{{json .}}")
    out = []
    for line in r.stdout.splitlines():
        if line.strip().startswith("{"):
            e = json.loads(line)
            out.append((e.get("Actor", {}).get("Attributes", {}).get("name"), int(e["timeNano"])))
    return out


def journal(since, **match):
    """The journal's entries since `since` (epoch seconds) matching FIELD=value,
    each with "t_ns": the writer's own time (_SOURCE_REALTIME_TIMESTAMP) or
    journald's. [] when there is no journal."""
    r = sh("journalctl", "-o", "json", "--no-pager", "--since", f"@{since:.6f}",
           *[f"{k}={v}" for k, v in match.items()], check=False)
    out = []
    for line in r.stdout.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        e["t_ns"] = int(e.get("_SOURCE_REALTIME_TIMESTAMP") or e["__REALTIME_TIMESTAMP"]) * 1000
        out.append(e)
    return out


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


def attachments(state, binary=None):
    """netkeep list --json of a state directory."""
    return json.loads(sh(binary or NETKEEP, "list", "--json", "--state-dir", state).stdout)


def cleanup_attachments(cs, state, binary=None):
    """Removes the containers, then lets one reconcile collect their ports,
    netns links and records and release their leases (faster than a detach
    each for hundreds). Falls back to detach when the pass did not finish."""
    binary = binary or NETKEEP
    cs.remove()
    if not os.path.exists(os.path.join(state, "state.json")):
        return
    r = sh(binary, "reconcile", "--state-dir", state, check=False, timeout=900)
    if r.returncode != 0:
        log(f"cleanup: reconcile of {state} exited {r.returncode}; detaching what is left")
        for a in attachments(state, binary) if os.path.exists(os.path.join(state, "state.json")) else []:
            sh(binary, "detach", a["container_name"], "--state-dir", state, check=False)
