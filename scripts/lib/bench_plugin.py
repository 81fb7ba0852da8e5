"""The Docker network plugin rows of scripts/bench (see its header):

- plugin: `docker run -d --network NET --ip A` on a netkeep network to the
  first ping answered by the container (from the bench's DHCP namespace on
  the same bridge), against `docker run -d --net=none` + `netkeep attach
  --ip A` and against Docker's own bridge driver (ping from the host), in
  the same run, interleaved: median (min-max) over `runs`;
- plugin-reboot: 20 restart-policy containers on a netkeep network, the
  simulated reboot with the plugin socket made before dockerd starts
  (systemd-socket-activate, as netkeep.socket): dockerd's start to every
  container answering pings again, against the same 20 containers on a
  network of Docker's bridge driver (pinged from the host), and whether
  dockerd logged a plugin failure."""
import os, select, socket, statistics, struct, subprocess, threading, time

import benchlib
from benchlib import BR, IMAGE, NETKEEP, NS, TAG, TESTBED, TESTBED_RUN, Daemon, log, sh, wait_until, work

DRIVER = f"nkbench{TAG}"
SOCKET = f"/run/docker/plugins/{DRIVER}.sock"


class Pinger:
    """A raw ICMP socket opened inside network namespace `ns` (/run/netns/NS),
    or the host's when ns is None: echo requests every 5 ms until `address`
    answers (the host has no ping binary; one `busybox ping` per try would
    wait a second for each unanswered one)."""

    def __init__(self, ns):
        def open_socket():
            return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        if ns is None:
            self.sock = open_socket()
        else:
            result = {}

            def inside():
                fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
                try:
                    if benchlib.libc.setns(fd, benchlib.CLONE_NEWNET) != 0:
                        result["error"] = OSError("setns " + ns)
                        return
                finally:
                    os.close(fd)
                result["sock"] = open_socket()
            t = threading.Thread(target=inside)
            t.start()
            t.join()
            if "error" in result:
                raise result["error"]
            self.sock = result["sock"]
        self.sock.setblocking(False)
        self.ident = os.getpid() & 0xffff
        self.seq = 0

    @staticmethod
    def checksum(data):
        if len(data) % 2:
            data += b"\0"
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        total = (total >> 16) + (total & 0xffff)
        return ~(total + (total >> 16)) & 0xffff

    def until_answered(self, address, timeout=10):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            self.seq = (self.seq + 1) & 0xffff
            header = struct.pack("!BBHHH", 8, 0, 0, self.ident, self.seq)
            packet = struct.pack("!BBHHH", 8, 0, self.checksum(header + b"netkeep"), self.ident, self.seq) + b"netkeep"
            try:
                self.sock.sendto(packet, (address, 0))
            except OSError:
                pass  # no route yet
            deadline = time.monotonic() + 0.005
            while time.monotonic() < deadline:
                ready, _, _ = select.select([self.sock], [], [], max(0, deadline - time.monotonic()))
                if not ready:
                    break
                data, (source, _) = self.sock.recvfrom(2048)
                ihl = (data[0] & 0x0f) * 4
                kind, _, _, ident, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
                if source == address and kind == 0 and ident == self.ident:
                    return time.monotonic() - t0
        raise RuntimeError(f"{address} never answered")

    def close(self):
        self.sock.close()


def spread(values):
    ms = sorted(v * 1000 for v in values)
    return f"{statistics.median(ms):.0f} ms ({ms[0]:.0f}-{ms[-1]:.0f})"


def plugin_rows(runs):
    state = f"{work()}/plugin-state"
    daemon = Daemon(state, "plugin", extra=["--plugin-socket", SOCKET])
    net, bridge_net = f"nkbench-{TAG}-ovs", f"nkbench-{TAG}-br"
    names = []
    times = {"plugin": [], "attach": [], "bridge": []}
    on_bridge, on_host = Pinger(NS), Pinger(None)
    try:
        daemon.start()
        sh("docker", "network", "create", "-d", DRIVER, "-o", f"bridge={BR}", "--subnet", "10.2.0.0/16", "--gateway", "10.2.0.1", net)
        sh("docker", "network", "create", "-d", "bridge", "--subnet", "172.31.250.0/24", bridge_net)
        for i in range(runs):
            for kind in ("plugin", "attach", "bridge"):
                name = f"nkbench-{TAG}-p{kind}-{i}"
                names.append(name)
                t0 = time.monotonic()
                if kind == "plugin":
                    address = f"10.2.254.{10 + i}"
                    sh("docker", "run", "-d", "--name", name, "--network", net, "--ip", address, IMAGE, "sleep", "1000000")
                    pinger = on_bridge
                elif kind == "attach":
                    address = f"10.2.253.{10 + i}"
                    sh("docker", "run", "-d", "--name", name, "--net=none", IMAGE, "sleep", "1000000")
                    sh(NETKEEP, "attach", name, "--bridge", BR, "--ip", f"{address}/16", "--state-dir", f"{work()}/attach-state")
                    pinger = on_bridge
                else:
                    address = f"172.31.250.{10 + i}"
                    sh("docker", "run", "-d", "--name", name, "--network", bridge_net, "--ip", address, IMAGE, "sleep", "1000000")
                    pinger = on_host
                pinger.until_answered(address)
                times[kind].append(time.monotonic() - t0)
    finally:
        for name in names:
            sh(NETKEEP, "detach", name, "--state-dir", f"{work()}/attach-state", check=False)
        if names:
            sh("docker", "rm", "-f", *names, check=False)
        sh("docker", "network", "rm", net, bridge_net, check=False)
        daemon.stop()
        on_bridge.close()
        on_host.close()
    rows = [
        (f"docker run --network (netkeep plugin, static) to a pinging container, {runs} runs", spread(times["plugin"]),
         f"--net=none + netkeep attach {spread(times['attach'])}; Docker's bridge driver {spread(times['bridge'])}",
         f"{statistics.median(times['plugin']) / statistics.median(times['bridge']):.1f}x bridge", "same run, interleaved"),
    ]
    return rows, {k: [round(v * 1000, 1) for v in vs] for k, vs in times.items()}


def reboot_once(n, on_plugin):
    """One simulated reboot of n restart-policy containers on a netkeep
    network (or a bridge network); seconds from dockerd's start to all pinging."""
    state = f"{work()}/plugin-reboot-state"
    net = f"nkbench-{TAG}-rb{'p' if on_plugin else 'b'}"
    names = [f"nkbench-{TAG}-rb{'p' if on_plugin else 'n'}-{i}" for i in range(n)]
    daemon = Daemon(state, "plugin-reboot", extra=["--plugin-socket", SOCKET])
    activated = None
    try:
        if on_plugin:
            daemon.start()
            sh("docker", "network", "create", "-d", DRIVER, "-o", f"bridge={BR}", "--subnet", "10.2.0.0/16", "--gateway", "10.2.0.1", net)
        else:
            sh("docker", "network", "create", "-d", "bridge", "--subnet", "172.31.251.0/24", net)
        for i, name in enumerate(names):
            extra = ["--network", net, "--ip", f"10.2.252.{10 + i}" if on_plugin else f"172.31.251.{10 + i}"]
            sh("docker", "run", "-d", "--restart=always", "--name", name, *extra, IMAGE, "sleep", "1000000")
        daemon.stop()
        sh(TESTBED, "reboot", "--hold-docker")
        # BenchNetwork's dnsmasq namespace keeps its veth; only the containers' died.
        if on_plugin:
            out = open(f"{work()}/daemon-plugin-reboot-activated.log", "w")
            activated = subprocess.Popen(["systemd-socket-activate", "-l", SOCKET, NETKEEP, "daemon", "--foreground", "-v",
                                          "--state-dir", state, "--plugin-socket", SOCKET], stdout=out, stderr=out)
            wait_until(lambda: os.path.exists(SOCKET), 10, "the plugin socket")
        t0 = time.monotonic()
        sh(TESTBED, "docker-start")
        pinger = Pinger(NS if on_plugin else None)
        for i in range(n):
            pinger.until_answered(f"10.2.252.{10 + i}" if on_plugin else f"172.31.251.{10 + i}", timeout=120)
        pinger.close()
        seconds = time.monotonic() - t0
        dockerd = open(f"{TESTBED_RUN}/dockerd.log").read().splitlines()
        failures = [l for l in dockerd if DRIVER in l and ("level=error" in l or "level=warning" in l)]
        return seconds, failures
    finally:
        sh("docker", "rm", "-f", *names, check=False)
        sh("docker", "network", "rm", net, check=False)
        if activated:
            activated.terminate()
            activated.wait(30)
        daemon.stop()


def reboot_rows(n=20, runs=3):
    plugin, alone, failures = [], [], []
    for _ in range(runs):
        s, f = reboot_once(n, True)
        plugin.append(s)
        failures += f
        alone.append(reboot_once(n, False)[0])
    rows = [(f"reboot: {n} restart-policy containers on a netkeep network, dockerd start to all pinging, {runs} runs",
             spread(plugin), f"Docker's bridge driver {spread(alone)}", f"{statistics.median(plugin) / statistics.median(alone):.1f}x",
             f"{len(failures)} plugin errors in dockerd's log")]
    return rows, {"plugin_ms": [round(s * 1000) for s in plugin], "alone_ms": [round(s * 1000) for s in alone], "failures": failures}
