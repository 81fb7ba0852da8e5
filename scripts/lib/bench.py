"""scripts/bench: netkeep against the manual way, on the real test bed.

DHCP rows use a bridge and DHCP server of their own (nk-bench0, dnsmasq with a
10.2.0.0/16 pool and --no-ping, so that 2 x 200 clients fit and the setup does
not wait for dnsmasq's 3 s probe of each new address; recovery after a reboot
asks for known addresses, which dnsmasq never probes)."""
import json, os, re, signal, socket, statistics, subprocess, sys, tempfile, time, uuid

NETKEEP = os.environ["NETKEEP_BIN"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(ROOT, "scripts", "testbed")
QUICK = "--quick" in sys.argv
BR = "nk-bench0"
NS = "nk-benchdhcp"
WORK = tempfile.mkdtemp(prefix="netkeep-bench-")
TAG = uuid.uuid4().hex[:6]
rows = []


def sh(*args, check=True, env=None, timeout=600):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(list(args), capture_output=True, text=True, env=e, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def log(text):
    print(f"bench: {text}", file=sys.stderr, flush=True)


class BenchNetwork:
    """nk-bench0 with a DHCP server namespace of its own."""

    def __enter__(self):
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
           "--dhcp-range=10.2.0.10,10.2.3.250,255.255.0.0,1h", "--dhcp-option=option:router,10.2.0.1",
           f"--dhcp-leasefile={WORK}/leases", f"--pid-file={WORK}/dnsmasq.pid", f"--log-facility={WORK}/dnsmasq.log")
        return self

    def __exit__(self, *exc):
        try:
            os.kill(int(open(f"{WORK}/dnsmasq.pid").read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        sh("ovs-vsctl", "--if-exists", "del-br", BR, check=False)
        sh("ip", "link", "del", "nkbdhcp", check=False)
        sh("ip", "netns", "del", NS, check=False)


ALL_CONTAINERS = []


class Containers:
    def __init__(self, prefix, n):
        self.names = [f"nkbench-{TAG}-{prefix}-{i}" for i in range(n)]
        ALL_CONTAINERS.append(self)
        for name in self.names:
            sh("docker", "run", "-d", "--net=none", "--restart=always", "--name", name, "netkeep-test/busybox", "sleep", "1000000")

    def pids(self):
        out = sh("docker", "inspect", "-f", "{{.Name}} {{.State.Pid}}", *self.names).stdout.split("\n")
        return {l.split()[0].lstrip("/"): int(l.split()[1]) for l in out if l.strip()}

    def wait_running(self, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(p > 0 for p in self.pids().values()):
                return
            time.sleep(0.5)
        raise RuntimeError("containers did not come back")

    def remove(self):
        for i in range(0, len(self.names), 50):
            sh("docker", "rm", "-f", *self.names[i:i + 50], check=False)


def address_of(pid):
    r = sh("nsenter", "-t", str(pid), "-n", "ip", "-o", "-4", "addr", "show", "eth1", check=False)
    m = re.search(r"inet (\S+)/", r.stdout)
    return m.group(1) if m else None


def notify_socket():
    path = f"{WORK}/notify-{uuid.uuid4().hex[:6]}.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    return s, path


def recovery(n):
    """Seconds: netkeep (daemon start to READY=1) and the manual replay, same containers."""
    state = f"{WORK}/state-{n}"
    cs = Containers(f"dhcp{n}", n)
    log(f"recovery N={n}: attaching with netkeep --dhcp")
    for name in cs.names:
        sh(NETKEEP, "attach", name, "--bridge", BR, "--dhcp", "--state-dir", state)
    recorded = {a["container_name"]: (a["address"].split("/")[0], a["mac"]) for a in
                json.loads(sh(NETKEEP, "list", "--json", "--state-dir", state).stdout)}
    sh(TESTBED, "reboot", timeout=900)
    cs.wait_running()
    sock, path = notify_socket()
    t0 = time.monotonic()
    # Its log (with the phase timings of the first reconcile) stays in WORK.
    daemon_log = open(f"{WORK}/daemon-recovery-{n}.log", "w")
    daemon = subprocess.Popen([NETKEEP, "daemon", "--foreground", "-v", "--state-dir", state], env={**os.environ, "NOTIFY_SOCKET": path},
                              stdout=daemon_log, stderr=daemon_log)
    sock.settimeout(300)
    try:
        while b"READY=1" not in sock.recv(4096):
            pass
    except TimeoutError:
        daemon.kill()
        raise RuntimeError("the daemon sent no READY=1 within 300 s (is NETKEEP_BIN up to date?)")
    netkeep_s = time.monotonic() - t0
    log(f"recovery N={n}: READY=1 after {netkeep_s:.2f} s (daemon log: {WORK}/daemon-recovery-{n}.log)")
    pids = cs.pids()
    netkeep_ok = sum(address_of(pids[name]) == recorded[name][0] for name in cs.names)
    daemon.send_signal(signal.SIGTERM)
    daemon.wait()
    for name in cs.names:
        sh(NETKEEP, "detach", name, "--state-dir", state)

    log(f"recovery N={n}: the manual way, ovs-docker add-port + dhclient")

    def manual(name, mac, pid):
        sh("ovs-docker", "del-port", BR, "eth1", name, check=False)
        sh("ovs-docker", "add-port", BR, "eth1", name, f"--macaddress={mac}")
        host = sh("ovs-vsctl", "--data=bare", "--no-heading", "--columns=name", "find", "interface",
                  f"external_ids:container_id={name}", "external_ids:container_iface=eth1").stdout.strip()
        sh("ethtool", "-K", host, "tx", "off")
        sh("nsenter", "-t", str(pid), "-n", "ethtool", "-K", "eth1", "tx", "off")
        sh("nsenter", "-t", str(pid), "-n", "dhclient", "-1", "-pf", f"{WORK}/{name}.pid", "-lf", f"{WORK}/{name}.leases", "eth1", check=False)

    def stop_dhclients():
        for name in cs.names:
            try:
                os.kill(int(open(f"{WORK}/{name}.pid").read()), signal.SIGTERM)
            except (OSError, ValueError):
                pass

    pids = cs.pids()
    for name in cs.names:
        manual(name, recorded[name][1], pids[name])
    before = {name: address_of(pid) for name, pid in cs.pids().items()}
    stop_dhclients()
    sh(TESTBED, "reboot", timeout=900)
    cs.wait_running()
    pids = cs.pids()
    t0 = time.monotonic()
    for name in cs.names:
        manual(name, recorded[name][1], pids[name])
    manual_s = time.monotonic() - t0
    manual_ok = sum(address_of(pids[name]) == before[name] for name in cs.names)
    stop_dhclients()
    for name in cs.names:
        sh("ovs-docker", "del-port", BR, "eth1", name, check=False)
    cs.remove()
    return netkeep_s, netkeep_ok, manual_s, manual_ok


def garbage_collection(n=200):
    state = f"{WORK}/state-gc"
    ours = Containers("gc", n)
    log(f"gc: {n} attached containers removed, then netkeep reconcile")
    for i, name in enumerate(ours.names):
        sh(NETKEEP, "attach", name, "--bridge", BR, "--ip", f"10.3.{i // 200}.{i % 200 + 10}/16", "--state-dir", state)
    ours.remove()
    t0 = time.monotonic()
    r = sh(NETKEEP, "reconcile", "--json", "--state-dir", state, check=False)
    netkeep_s = time.monotonic() - t0
    removed = sum(a["action"] == "remove-attachment" and a.get("result") == "done" for a in json.loads(r.stdout)["actions"])
    manual = Containers("gcm", n)
    log(f"gc: {n} ovs-docker ports of removed containers, then ovs-docker del-port each")
    for i, name in enumerate(manual.names):
        sh("ovs-docker", "add-port", BR, "eth1", name, f"--ipaddress=10.4.{i // 200}.{i % 200 + 10}/16")
    manual.remove()
    t0 = time.monotonic()
    for name in manual.names:
        sh("ovs-docker", "del-port", BR, "eth1", name, check=False)
    manual_s = time.monotonic() - t0
    return netkeep_s, removed, manual_s


def dhcp_garbage_collection(n):
    """netkeep reconcile after `docker rm -f` of n DHCP-attached containers:
    ports, records and leases (released from netkeep's release station)."""
    state = f"{WORK}/state-gc-dhcp"
    cs = Containers("gcd", n)
    log(f"gc: {n} DHCP-attached containers removed, then netkeep reconcile (leases released)")
    for name in cs.names:
        sh(NETKEEP, "attach", name, "--bridge", BR, "--dhcp", "--state-dir", state)
    macs = [a["mac"] for a in json.loads(sh(NETKEEP, "list", "--json", "--state-dir", state).stdout)]
    cs.remove()
    t0 = time.monotonic()
    r = sh(NETKEEP, "reconcile", "--json", "--state-dir", state, check=False)
    netkeep_s = time.monotonic() - t0
    removed = sum(a["action"] == "remove-attachment" and a.get("result") == "done" for a in json.loads(r.stdout)["actions"])
    leases = open(f"{WORK}/leases").read()
    held = sum(mac in leases for mac in macs)
    return netkeep_s, removed, held


def latency(restarts):
    state = f"{WORK}/state-latency"
    cs = Containers("lat", 2)
    sh(NETKEEP, "attach", cs.names[0], "--bridge", BR, "--ip", "10.5.0.10/16", "--state-dir", state)
    sh(NETKEEP, "attach", cs.names[1], "--bridge", BR, "--dhcp", "--state-dir", state)
    daemon = subprocess.Popen([NETKEEP, "daemon", "--foreground", "--state-dir", state], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    out = {}
    for name, mode in zip(cs.names, ["static", "dhcp"]):
        r = sh("python3", os.path.join(ROOT, "scripts", "lib", "restart_latency.py"), name, str(restarts), timeout=1200)
        m = re.search(r"p50\s+([\d.]+) ms\s+p90\s+([\d.]+) ms\s+p99\s+([\d.]+) ms", r.stdout)
        out[mode] = tuple(float(x) for x in m.groups()) if m else None
    daemon.send_signal(signal.SIGTERM)
    daemon.wait()
    for name in cs.names:
        sh(NETKEEP, "detach", name, "--state-dir", state)
    cs.remove()
    return out


def idle(n, seconds):
    state = f"{WORK}/state-idle"
    cs = Containers("idle", n)
    for i, name in enumerate(cs.names):
        sh(NETKEEP, "attach", name, "--bridge", BR, "--ip", f"10.6.{i // 200}.{i % 200 + 10}/16", "--state-dir", state)
    daemon = subprocess.Popen([NETKEEP, "daemon", "--foreground", "--state-dir", state], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3)
    tick = os.sysconf("SC_CLK_TCK")

    def cpu():
        f = open(f"/proc/{daemon.pid}/stat").read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])

    c0, t0 = cpu(), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu(), time.monotonic()
    status = open(f"/proc/{daemon.pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    daemon.send_signal(signal.SIGTERM)
    daemon.wait()
    for name in cs.names:
        sh(NETKEEP, "detach", name, "--state-dir", state)
    cs.remove()
    return 100 * (c1 - c0) / tick / (t1 - t0), rss, peak


def main():
    sizes = [20] if QUICK else [50, 200]
    with BenchNetwork():
      try:
        for n in sizes:
            nk, nk_ok, man, man_ok = recovery(n)
            rows.append((f"recovery of {n} DHCP attachments after a reboot", f"{nk:.2f} s ({nk_ok}/{n} verified)",
                         f"{man:.1f} s ({man_ok}/{n})", f"{man / nk:.0f}x", "<= 2 s, >= 50x" if n == 200 else ""))
        lat = latency(30 if QUICK else 100)
        for mode in ("static", "dhcp"):
            if lat.get(mode):
                p50, p90, p99 = lat[mode]
                rows.append((f"repair after docker restart ({mode})", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", "-", "-",
                             "p50 <= 20 ms, p99 <= 100 ms"))
        n = 50 if QUICK else 200
        nk, removed, man = garbage_collection(n)
        rows.append((f"GC of {n} removed containers' ports", f"{nk:.2f} s ({removed} removed)", f"{man:.1f} s", f"{man / nk:.0f}x", "<= 1 s"))
        nk, removed, held = dhcp_garbage_collection(n)
        rows.append((f"GC of {n} removed DHCP containers, leases released", f"{nk:.2f} s ({removed} removed, {held} leases still held)",
                     "-", "-", "every lease released"))
        cpu, rss, peak = idle(n, 20 if QUICK else 60)
        rows.append((f"daemon idle with {n} attachments, {20 if QUICK else 60} s", f"RSS {rss:.1f} MiB (peak {peak:.1f}), CPU {cpu:.2f} %", "-", "-",
                     "RSS <= 30 MB, CPU <= 0.5 %"))
      finally:
        for cs in ALL_CONTAINERS:
            cs.remove()
    print(f"netkeep benchmarks, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, {NETKEEP}")
    print(f"| measurement | netkeep | manual (seed) | ratio | target |")
    print(f"|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
