"""The Docker network plugin rows of scripts/bench (see its header):

- plugin: `docker run -d --network NET --ip A` on a netkeep network to the
  first ping answered by the container (from the bench's DHCP namespace on
  the same bridge), against `docker run -d --net=none` + `netkeep attach
  --ip A` and against Docker's own bridge driver (ping from the host), in
  the same run, interleaved: median (min-max) over `runs`;
- plugin-reboot: 20 restart-policy containers on a netkeep network, the
  simulated reboot with the plugin socket made before dockerd starts
  (systemd-socket-activate, as netkeep.socket): dockerd's start to every
  container answering pings again, against the same 20 containers with
  --net=none (Docker alone), and whether dockerd logged a plugin failure."""
import os, statistics, subprocess, time

import benchlib
from benchlib import BR, IMAGE, NETKEEP, NS, TAG, TESTBED, TESTBED_RUN, Daemon, log, sh, wait_until, work

DRIVER = f"nkbench{TAG}"
SOCKET = f"/run/docker/plugins/{DRIVER}.sock"


def pinged(ns, address, timeout=10):
    """Seconds until `address` answers a ping (from namespace `ns`, or the host when None)."""
    t0 = time.monotonic()
    prefix = ["ip", "netns", "exec", ns] if ns else []
    while time.monotonic() - t0 < timeout:
        if subprocess.run(prefix + ["ping", "-c", "1", "-W", "0.2", address], capture_output=True).returncode == 0:
            return time.monotonic() - t0
    raise RuntimeError(f"{address} never answered")


def spread(values):
    ms = sorted(v * 1000 for v in values)
    return f"{statistics.median(ms):.0f} ms ({ms[0]:.0f}-{ms[-1]:.0f})"


def plugin_rows(runs):
    state = f"{work()}/plugin-state"
    daemon = Daemon(state, "plugin", extra=["--plugin-socket", SOCKET])
    net, bridge_net = f"nkbench-{TAG}-ovs", f"nkbench-{TAG}-br"
    names = []
    times = {"plugin": [], "attach": [], "bridge": []}
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
                    ns = NS
                elif kind == "attach":
                    address = f"10.2.253.{10 + i}"
                    sh("docker", "run", "-d", "--name", name, "--net=none", IMAGE, "sleep", "1000000")
                    sh(NETKEEP, "attach", name, "--bridge", BR, "--ip", f"{address}/16", "--state-dir", f"{work()}/attach-state")
                    ns = NS
                else:
                    address = f"172.31.250.{10 + i}"
                    sh("docker", "run", "-d", "--name", name, "--network", bridge_net, "--ip", address, IMAGE, "sleep", "1000000")
                    ns = None
                pinged(ns, address)
                times[kind].append(time.monotonic() - t0)
    finally:
        for name in names:
            sh(NETKEEP, "detach", name, "--state-dir", f"{work()}/attach-state", check=False)
        if names:
            sh("docker", "rm", "-f", *names, check=False)
        sh("docker", "network", "rm", net, bridge_net, check=False)
        daemon.stop()
    rows = [
        (f"docker run --network (netkeep plugin, static) to a pinging container, {runs} runs", spread(times["plugin"]),
         f"--net=none + netkeep attach {spread(times['attach'])}; Docker's bridge driver {spread(times['bridge'])}",
         f"{statistics.median(times['plugin']) / statistics.median(times['bridge']):.1f}x bridge", "same run, interleaved"),
    ]
    return rows, {k: [round(v * 1000, 1) for v in vs] for k, vs in times.items()}


def reboot_once(n, on_plugin):
    """One simulated reboot of n restart-policy containers; seconds from dockerd's start to all pinging."""
    state = f"{work()}/plugin-reboot-state"
    net = f"nkbench-{TAG}-rb"
    names = [f"nkbench-{TAG}-rb{'p' if on_plugin else 'n'}-{i}" for i in range(n)]
    daemon = Daemon(state, "plugin-reboot", extra=["--plugin-socket", SOCKET])
    activated = None
    try:
        if on_plugin:
            daemon.start()
            sh("docker", "network", "create", "-d", DRIVER, "-o", f"bridge={BR}", "--subnet", "10.2.0.0/16", "--gateway", "10.2.0.1", net)
        for i, name in enumerate(names):
            extra = ["--network", net, "--ip", f"10.2.252.{10 + i}"] if on_plugin else ["--net=none"]
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
        if on_plugin:
            for i in range(n):
                pinged(NS, f"10.2.252.{10 + i}", timeout=120)
        else:
            wait_until(lambda: len(sh("docker", "ps", "-q", "--filter", f"name=nkbench-{TAG}-rbn-").stdout.split()) >= n, 120, "the containers")
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
             spread(plugin), f"--net=none (Docker alone, to running) {spread(alone)}", f"{statistics.median(plugin) / statistics.median(alone):.1f}x",
             f"{len(failures)} plugin errors in dockerd's log")]
    return rows, {"plugin_ms": [round(s * 1000) for s in plugin], "alone_ms": [round(s * 1000) for s in alone], "failures": failures}
