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
