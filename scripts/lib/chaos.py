"""Fault drills for netkeep on the real test bed (run by scripts/chaos).

Each round of each fault: do something netkeep must survive, let netkeep repair
(the daemon, or `netkeep reconcile`), then check the invariants:
  - no attachment lost: every attachment the drill made and did not detach or
    remove is recorded, and, while its container runs, has its interface with
    the recorded MAC and address inside the container and its port on the bridge;
  - nothing leaks: no OVS port, host veth or /var/run/netns link of the drill's
    containers that the state file does not account for; no DHCP lease left for
    an attachment that was detached;
  - the state file parses.
"""
import json, os, random, signal, subprocess, sys, tempfile, time, uuid

NETKEEP = os.environ["NETKEEP_BIN"]
os.environ.setdefault("NETKEEP_PLUGIN_SOCKET", "none")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(ROOT, "scripts", "testbed")
BRIDGE = os.environ.get("NETKEEP_TESTBED_BRIDGE", "nk-br0")
RUN_DIR = os.environ.get("NETKEEP_TESTBED_DIR", "/run/netkeep-testbed")
RNG = random.Random(int(os.environ.get("NETKEEP_CHAOS_SEED", str(int(time.time())))))


def sh(*args, env=None, timeout=120, check=False):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(list(args), capture_output=True, text=True, env=e, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def alive(pid):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


def fnv1a(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


class Drill:
    def __init__(self):
        self.tag = uuid.uuid4().hex[:6]
        self.mount = tempfile.mkdtemp(prefix="netkeep-chaos-")
        # A small tmpfs, so that "disk full" is a real ENOSPC.
        sh("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", self.mount, check=True)
        self.state = os.path.join(self.mount, "state")
        self.net = f"10.{RNG.randint(100, 199)}.{RNG.randint(0, 255)}"
        self.containers = {}   # name -> {"id", "dhcp", "attached", "removed", "mac", "address"}
        self.detached_macs = set()
        self.daemon = None
        self.next_host = 10

    # -- netkeep and the host -------------------------------------------------

    def nk(self, *args, env=None, timeout=120):
        return sh(NETKEEP, *args, "--state-dir", self.state, env=env, timeout=timeout)

    def listing(self):
        r = self.nk("list", "--json")
        if r.returncode != 0:
            raise AssertionError(f"state file unreadable: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def new_container(self, dhcp=False):
        name = f"nkchaos-{self.tag}-{len(self.containers)}"
        r = sh("docker", "run", "-d", "--net=none", "--restart=always", "--name", name, "netkeep-test/busybox", "sleep", "1000000", check=True)
        self.containers[name] = {"id": r.stdout.strip(), "dhcp": dhcp, "attached": False, "removed": False}
        return name

    def attach(self, name):
        c = self.containers[name]
        if c["dhcp"]:
            args = ["--dhcp"]
        else:
            self.next_host += 1
            args = ["--ip", f"{self.net}.{self.next_host}/24"]
        r = self.nk("attach", name, "--bridge", BRIDGE, *args)
        if r.returncode == 0:
            c["attached"] = True
        return r

    def detach(self, name):
        c = self.containers[name]
        entry = next((a for a in self.listing() if a["container_name"] == name), None)
        r = self.nk("detach", name)
        if r.returncode == 0:
            c["attached"] = False
            if entry and entry["mode"] == "dhcp":
                self.detached_macs.add(entry["mac"])
        return r

    def remove(self, name):
        sh("docker", "rm", "-f", name)
        self.containers[name]["removed"] = True

    def start_daemon(self):
        log = open(os.path.join(tempfile.gettempdir(), f"netkeep-chaos-{self.tag}.log"), "a")
        self.daemon = subprocess.Popen([NETKEEP, "daemon", "--foreground", "--state-dir", self.state], stdout=log, stderr=log)

    def stop_daemon(self, sig=signal.SIGTERM):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(sig)
            try:
                self.daemon.wait(30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        self.daemon = None

    def converge(self, tries=6):
        """netkeep reconcile until the host matches the state."""
        last = None
        for _ in range(tries):
            last = self.nk("reconcile", timeout=180)
            if last.returncode == 0:
                return True
            time.sleep(0.5)
        raise AssertionError(f"reconcile does not converge: {last.stdout[-2000:]} {last.stderr[-2000:]}")

    def wait_running(self, timeout=120):
        names = [n for n, c in self.containers.items() if not c["removed"]]
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = sh("docker", "ps", "--format", "{{.Names}}")
            if set(names) <= set(r.stdout.split()):
                return
            time.sleep(0.2)
        raise AssertionError("containers did not come back")

    # -- invariants -----------------------------------------------------------

    def check(self):
        """Returns the number of attachments verified whole; raises on a loss or a leak."""
        state = self.listing()
        recorded = {a["container_name"]: a for a in state}
        problems, whole = [], 0
        for name, c in self.containers.items():
            if not c["attached"] or c["removed"]:
                continue
            a = recorded.get(name)
            if a is None:
                problems.append(f"LOST: {name} is not recorded")
                continue
            pid = sh("docker", "inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
            if pid in ("", "0"):
                continue
            link = sh("nsenter", "-t", pid, "-n", "ip", "-o", "link", "show", "eth1").stdout
            addr = sh("nsenter", "-t", pid, "-n", "ip", "-o", "-4", "addr", "show", "eth1").stdout
            if a["mac"] not in link:
                problems.append(f"LOST: {name} eth1 missing or without {a['mac']}")
            elif not a["address"] or f" {a['address']} " not in addr:
                problems.append(f"LOST: {name} eth1 without {a['address']}")
            elif a["host_ifname"] not in sh("ovs-vsctl", "list-ports", BRIDGE).stdout.split():
                problems.append(f"LOST: port {a['host_ifname']} of {name} missing")
            else:
                whole += 1
        tracked = {a["host_ifname"] for a in state}
        ours = {c["id"] for c in self.containers.values()}
        ports = sh("ovs-vsctl", "--format=json", "--columns=name,external_ids", "list", "Interface").stdout
        for name, ids in ((row[0], dict(row[1][1])) for row in json.loads(ports)["data"]):
            if ids.get("container_id") in ours and name not in tracked:
                problems.append(f"LEAK: port {name} of {ids['container_id'][:12]} is not in the state file")
        veths = {l.split(":")[1].strip().split("@")[0] for l in sh("ip", "-o", "link", "show", "type", "veth").stdout.splitlines()}
        for c in self.containers.values():
            host = "nk" + fnv1a(f"{c['id']}/eth1")[:12]
            if host in veths and host not in tracked:
                problems.append(f"LEAK: veth {host} of {c['id'][:12]} is not in the state file")
        for name, c in self.containers.items():
            path = f"/var/run/netns/{name}"
            if os.path.islink(path):
                target = os.readlink(path)
                pid = target.split("/")[2] if target.startswith("/proc/") else ""
                if c["removed"] or not pid.isdigit() or not alive(int(pid)):
                    problems.append(f"LEAK: {path} -> {target}")
        leases = open(os.path.join(RUN_DIR, "leases")).read()
        for mac in self.detached_macs:
            if mac in leases:
                problems.append(f"LEAK: DHCP lease of detached {mac}")
        if problems:
            raise AssertionError("; ".join(problems))
        return whole

    # -- faults -----------------------------------------------------------------

    def live(self):
        return [n for n, c in self.containers.items() if not c["removed"]]

    def burst(self):
        """Attach, detach, restart and remove, in random order and all at once."""
        procs = []
        for _ in range(RNG.randint(2, 4)):
            name = self.new_container(dhcp=RNG.random() < 0.3)
            self.attach(name)
        for name in RNG.sample(self.live(), min(3, len(self.live()))):
            kind = RNG.choice(["restart", "restart", "rm", "detach"])
            if kind == "restart":
                procs.append(subprocess.Popen(["docker", "restart", "-t", "0", name], stdout=subprocess.DEVNULL))
            elif kind == "rm":
                self.containers[name]["removed"] = True
                procs.append(subprocess.Popen(["docker", "rm", "-f", name], stdout=subprocess.DEVNULL))
            elif self.containers[name]["attached"]:
                self.detach(name)
        return procs

    def fault_daemon_kill(self):
        self.start_daemon()
        time.sleep(RNG.uniform(0.3, 1.5))
        procs = self.burst()
        time.sleep(RNG.uniform(0, 0.5))
        self.stop_daemon(signal.SIGKILL)
        for p in procs:
            p.wait()
        self.wait_running()
        self.start_daemon()
        time.sleep(2)
        self.stop_daemon()
        self.converge()

    def fault_ovs_restart(self):
        for name in RNG.sample(self.live(), min(3, len(self.live()))):
            sh("docker", "restart", "-t", "0", name)
        reconcile = subprocess.Popen([NETKEEP, "reconcile", "--state-dir", self.state], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(RNG.uniform(0, 0.05))
        sh(TESTBED, "ovs-stop")
        sh(TESTBED, "ovs-start", check=True)
        reconcile.wait(180)
        self.converge()

    def fault_docker_restart(self):
        self.start_daemon()
        time.sleep(1)
        sh(TESTBED, "docker-stop")
        time.sleep(RNG.uniform(0, 2))
        sh(TESTBED, "docker-start", check=True)
        self.wait_running()
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                self.check()
                break
            except AssertionError:
                time.sleep(0.5)
        self.stop_daemon()
        self.converge()

    def fault_dhcp_down_reboot(self):
        if not any(c["dhcp"] and c["attached"] and not c["removed"] for c in self.containers.values()):
            self.attach(self.new_container(dhcp=True))
        sh(TESTBED, "dhcp-stop")
        try:
            sh(TESTBED, "reboot", check=True, timeout=300)
            self.wait_running()
            self.converge()
            self.check()
        finally:
            sh(TESTBED, "dhcp-start", check=True)
        r = self.nk("dhcp-renew", env={"NETKEEP_TIME_OFFSET": "31"})
        if r.returncode != 0:
            raise AssertionError(f"leases not confirmed once dnsmasq was back: {r.stdout} {r.stderr}")

    def fault_state_corrupt(self):
        path = os.path.join(self.state, "state.json")
        good = open(path, "rb").read()
        bad = good[: len(good) // 2] if RNG.random() < 0.5 else os.urandom(len(good))
        open(path, "wb").write(bad)
        for name in RNG.sample(self.live(), min(2, len(self.live()))):
            sh("docker", "restart", "-t", "0", name)
        before = sh("ovs-vsctl", "list-ports", BRIDGE).stdout
        r = sh(NETKEEP, "daemon", "--foreground", "--state-dir", self.state, timeout=30)
        if r.returncode == 0:
            raise AssertionError("the daemon started on a corrupt state file")
        if open(path, "rb").read() != bad:
            raise AssertionError("the corrupt state file was overwritten")
        if sh("ovs-vsctl", "list-ports", BRIDGE).stdout != before:
            raise AssertionError("ports changed while the state file was corrupt")
        open(path, "wb").write(good)
        self.converge()

    def fault_disk_full(self):
        filler = os.path.join(self.mount, "filler")
        sh("dd", "if=/dev/zero", f"of={filler}", "bs=4k", "count=1000")
        try:
            name = self.new_container()
            r = self.attach(name)
            if r.returncode == 0:
                raise AssertionError("attach succeeded on a full disk")
            for victim in RNG.sample(self.live(), min(2, len(self.live()))):
                sh("docker", "restart", "-t", "0", victim)
            self.nk("reconcile")   # repairs the host; its state write fails
            self.listing()
        finally:
            os.unlink(filler)
        self.converge()

    def cleanup(self):
        self.stop_daemon()
        for name, c in self.containers.items():
            if not c["removed"]:
                self.nk("detach", name)
                sh("docker", "rm", "-f", name)
        self.nk("reconcile")
        sh("umount", self.mount)
        os.rmdir(self.mount)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    drill = Drill()
    faults = [("daemon kill -9 in bursts", drill.fault_daemon_kill), ("OVS restart mid-reconcile", drill.fault_ovs_restart),
              ("dockerd restart", drill.fault_docker_restart), ("dnsmasq down during reboot", drill.fault_dhcp_down_reboot),
              ("state file corrupt", drill.fault_state_corrupt), ("disk full under state", drill.fault_disk_full)]
    results = {label: {"rounds": 0, "repaired": 0, "lost": 0, "errors": []} for label, _ in faults}
    try:
        for _ in range(4):
            drill.attach(drill.new_container(dhcp=False))
        drill.attach(drill.new_container(dhcp=True))
        drill.check()
        for r in range(rounds):
            for label, fault in RNG.sample(faults, len(faults)):
                entry = results[label]
                entry["rounds"] += 1
                try:
                    fault()
                    entry["repaired"] += drill.check()
                except Exception as error:  # a failed check is a finding, the drill goes on
                    entry["lost"] += 1
                    entry["errors"].append(str(error)[:500])
                    try:
                        drill.converge()
                    except Exception:
                        pass
    finally:
        drill.cleanup()
    print(f"{'fault':32s} {'rounds':>6s} {'repaired':>9s} {'lost':>5s}")
    for label, entry in results.items():
        print(f"{label:32s} {entry['rounds']:6d} {entry['repaired']:9d} {entry['lost']:5d}")
        for e in entry["errors"]:
            print(f"    {e}")
    sys.exit(1 if any(e["lost"] for e in results.values()) else 0)


main()
