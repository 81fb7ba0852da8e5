"""The CNI rows of scripts/bench (see its header):

- cni: ADD of a static interface (host-local IPAM) to the first ping it
  answers, and its DEL, for netkeep on the bench's OVS bridge (pinged from
  the bench's DHCP namespace on it) against the reference `bridge` plugin on
  a Linux bridge of its own (pinged from the host), in the same run,
  interleaved: median (min-max) over `runs`. Each call is the plugin binary
  run as a runtime runs it (CNI_* variables, the config on stdin)."""
import json, os, subprocess, time

from benchlib import BR, NETKEEP, NS, TAG, log, sh, work
from bench_plugin import Pinger, spread

CNI_BIN = "/usr/lib/cni"


def call(binary, command, container, netns, config, state=None):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command, "CNI_CONTAINERID": container,
           "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": CNI_BIN}
    if state:
        env["NETKEEP_STATE_DIR"] = state
    p = subprocess.run([binary], input=json.dumps(config).encode(), env=env, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"{binary} {command} {container}: {p.stdout.decode()} {p.stderr.decode()}")
    return json.loads(p.stdout) if p.stdout.strip() else None


def cni_rows(runs):
    state, ipam = f"{work()}/cni-state", f"{work()}/cni-ipam"
    bridge = f"nkbcni{TAG}"
    netkeep_config = {"cniVersion": "1.0.0", "name": f"nkbench-{TAG}-ovs", "type": "netkeep", "bridge": BR,
                      "ipam": {"type": "host-local", "dataDir": ipam, "ranges": [[{"subnet": "10.2.0.0/16", "gateway": "10.2.0.1",
                               "rangeStart": "10.2.251.1", "rangeEnd": "10.2.251.250"}]]}}
    bridge_config = {"cniVersion": "1.0.0", "name": f"nkbench-{TAG}-br", "type": "bridge", "bridge": bridge, "isGateway": True,
                     "ipam": {"type": "host-local", "dataDir": ipam, "subnet": "172.31.251.0/24"}}
    times = {"netkeep": [], "netkeep-call": [], "netkeep-del": [], "bridge": [], "bridge-call": [], "bridge-del": []}
    on_bridge, on_host = Pinger(NS), Pinger(None)
    namespaces = []
    try:
        for i in range(runs):
            for kind, binary, config, pinger in (("netkeep", NETKEEP, netkeep_config, on_bridge),
                                                 ("bridge", f"{CNI_BIN}/bridge", bridge_config, on_host)):
                ns = f"nkbcni-{TAG}-{kind[0]}{i}"
                sh("ip", "netns", "add", ns)
                namespaces.append(ns)
                netns, container = f"/run/netns/{ns}", f"bench-{TAG}-{kind}-{i}"
                t0 = time.monotonic()
                result = call(binary, "ADD", container, netns, config, state)
                times[kind + "-call"].append(time.monotonic() - t0)
                address = result["ips"][0]["address"].split("/")[0]
                pinger.until_answered(address)
                times[kind].append(time.monotonic() - t0)
                t1 = time.monotonic()
                call(binary, "DEL", container, netns, config, state)
                times[kind + "-del"].append(time.monotonic() - t1)
    finally:
        for ns in namespaces:
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", bridge, check=False)
        on_bridge.close()
        on_host.close()
    ratio = sorted(times["netkeep"])[len(times["netkeep"]) // 2] / sorted(times["bridge"])[len(times["bridge"]) // 2]
    rows = [
        (f"CNI ADD (static, host-local) to a pinging interface, {runs} runs", f"{spread(times['netkeep'])} (ADD itself {spread(times['netkeep-call'])})",
         f"reference bridge plugin {spread(times['bridge'])} (ADD itself {spread(times['bridge-call'])})", f"{ratio:.1f}x", "same run, interleaved"),
        (f"CNI DEL of that interface, {runs} runs", spread(times["netkeep-del"]), f"reference bridge plugin {spread(times['bridge-del'])}", "-", ""),
    ]
    return rows, {k: [round(v * 1000, 1) for v in vs] for k, vs in times.items()}


def cni_dhcp_rows(runs):
    """cni-dhcp: DEL then ADD of a client the DHCP server knows (a container
    restarted by its runtime: a new namespace each round), to the ADD's
    return with its lease, for netkeep-dhcp on nk-bench0 against the reference
    `bridge` plugin with the CNI `dhcp` IPAM daemon on a Linux bridge joined to
    nk-bench0 by a veth pair (the same dnsmasq answers both), interleaved.
    Each side's first ADD (a new lease) is timed once and kept out of the
    medians; DEL+ADD is the sum of the two calls of a round."""
    w = work()
    state, sock = f"{w}/cni-dhcp-state", f"{w}/cni-dhcp.sock"
    lbridge, uplink = f"nkbcd{TAG}", f"nkbcu{TAG}"
    netkeep_config = {"cniVersion": "1.0.0", "name": f"nkbench-{TAG}-dhcp", "type": "netkeep", "bridge": BR,
                      "ipam": {"type": "netkeep-dhcp"}}
    bridge_config = {"cniVersion": "1.0.0", "name": f"nkbench-{TAG}-brdhcp", "type": "bridge", "bridge": lbridge,
                     "ipam": {"type": "dhcp", "daemonSocketPath": sock}}
    sh("ip", "link", "add", lbridge, "type", "bridge")
    sh("ip", "link", "set", lbridge, "up")
    sh("ip", "link", "add", uplink, "type", "veth", "peer", "name", uplink + "p")
    sh("ip", "link", "set", uplink, "master", lbridge)
    for end in (uplink, uplink + "p"):
        sh("ip", "link", "set", end, "up")
        sh("ethtool", "-K", end, "tx", "off")
    sh("ovs-vsctl", "--may-exist", "add-port", BR, uplink + "p")
    daemon = subprocess.Popen([f"{CNI_BIN}/dhcp", "daemon", "-socketpath", sock], stdout=subprocess.DEVNULL,
                              stderr=open(f"{w}/cni-dhcp-daemon.log", "w"))
    times = {k: [] for k in ("netkeep-first", "netkeep-del", "netkeep-add", "netkeep", "bridge-first", "bridge-del", "bridge-add", "bridge")}
    namespaces = []
    sides = (("netkeep", NETKEEP, netkeep_config), ("bridge", f"{CNI_BIN}/bridge", bridge_config))
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the CNI dhcp daemon did not start: {open(f'{w}/cni-dhcp-daemon.log').read()}")
            time.sleep(0.02)

        def namespace(kind, i):
            ns = f"nkbcd-{TAG}-{kind[0]}{i}"
            sh("ip", "netns", "add", ns)
            namespaces.append(ns)
            return f"/run/netns/{ns}"

        current = {}
        for kind, binary, config in sides:
            netns = namespace(kind, "f")
            t0 = time.monotonic()
            call(binary, "ADD", f"bench-{TAG}-{kind}", netns, config, state)
            times[kind + "-first"].append(time.monotonic() - t0)
            current[kind] = netns
        addresses = {}
        for i in range(runs):
            for kind, binary, config in sides:
                container = f"bench-{TAG}-{kind}"
                t0 = time.monotonic()
                call(binary, "DEL", container, current[kind], config, state)
                t1 = time.monotonic()
                current[kind] = namespace(kind, i)
                t2 = time.monotonic()
                result = call(binary, "ADD", container, current[kind], config, state)
                t3 = time.monotonic()
                times[kind + "-del"].append(t1 - t0)
                times[kind + "-add"].append(t3 - t2)
                times[kind].append((t1 - t0) + (t3 - t2))
                addresses.setdefault(kind, set()).add(result["ips"][0]["address"])
        for kind, binary, config in sides:
            call(binary, "DEL", f"bench-{TAG}-{kind}", current[kind], config, state)
        log(f"cni-dhcp: addresses over {runs} rounds: " + ", ".join(f"{k} {sorted(v)}" for k, v in addresses.items()))
    finally:
        daemon.terminate()
        daemon.wait()
        for ns in namespaces:
            sh("ip", "netns", "del", ns, check=False)
        sh("ovs-vsctl", "--if-exists", "del-port", BR, uplink + "p", check=False)
        sh("ip", "link", "del", uplink, check=False)
        sh("ip", "link", "del", lbridge, check=False)
    median = lambda k: sorted(times[k])[len(times[k]) // 2]
    same = {k: len(v) == 1 for k, v in addresses.items()}
    rows = [
        (f"CNI DEL+ADD of a known DHCP client, {runs} runs", f"{spread(times['netkeep'])} (DEL {spread(times['netkeep-del'])}, ADD {spread(times['netkeep-add'])})",
         f"bridge + CNI dhcp daemon {spread(times['bridge'])} (DEL {spread(times['bridge-del'])}, ADD {spread(times['bridge-add'])})",
         f"{median('bridge') / median('netkeep'):.1f}x faster",
         f"same address every round: netkeep {same.get('netkeep')}, reference {same.get('bridge')}; target <= 10 ms"),
        ("CNI first ADD (a new lease, dnsmasq --no-ping)", spread(times["netkeep-first"]), f"bridge + CNI dhcp daemon {spread(times['bridge-first'])}", "-", "one each"),
    ]
    return rows, {k: [round(v * 1000, 1) for v in vs] for k, vs in times.items()}
