"""What scripts/test puts around the suite, so that a run neither depends on
nor changes what else is on the engine and the bridge.

  test_world.py sweep               removes what test runs left (a run that crashed):
                                    containers labelled org.netkeep.test-run, their OVS
                                    ports and /var/run/netns links
  test_world.py foreign-up DIR      someone else's world, made before the suite
  test_world.py foreign-check DIR   fails when a netkeep of the run touched it
  test_world.py foreign-down DIR    removes it

The foreign world: a container with the default instance's labels (what
scripts/demo leaves running), one labelled for another instance, a record
of another state directory with its port, a port that ovs-docker would have
made for a running container, and a port nobody owns. The check reads the
journal: every change netkeep makes is an audit entry (NETKEEP_ACTION), and
none may name a foreign container or port; the foreign rows and the foreign
state file must be as they were.

Environment: NETKEEP_BIN (default .build/debug/netkeep), NETKEEP_TESTBED_BRIDGE
(default nk-br0).
"""
import json
import os
import random
import subprocess
import sys
import time

BRIDGE = os.environ.get("NETKEEP_TESTBED_BRIDGE", "nk-br0")
IMAGE = "netkeep-test/busybox"
RUN_LABEL = "org.netkeep.test-run"
FOREIGN_LABEL = "org.netkeep.foreign-world"


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"test_world: {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def netkeep():
    return os.environ.get("NETKEEP_BIN", os.path.join(os.path.dirname(__file__), "..", "..", ".build", "debug", "netkeep"))


def remove_containers(label):
    """Removes the containers carrying `label`, then their OVS ports and netns links."""
    ids = sh("docker", "ps", "-aq", "--no-trunc", "--filter", f"label={label}").stdout.split()
    if not ids:
        return 0
    names = [sh("docker", "inspect", "-f", "{{.Name}}", i, check=False).stdout.strip().lstrip("/") for i in ids]
    sh("docker", "rm", "-f", *ids, check=False)
    for cid in ids:
        ports = sh("ovs-vsctl", "--timeout=20", "--data=bare", "--no-heading", "--columns=name", "find", "Interface",
                   f"external_ids:container_id={cid}", check=False).stdout.split()
        for port in ports:
            sh("ovs-vsctl", "--timeout=20", "--if-exists", "del-port", port, check=False)
            sh("ip", "link", "del", port, check=False)
    for name in names:
        link = f"/var/run/netns/{name}"
        if name and os.path.islink(link):
            os.unlink(link)
    return len(ids)


def sweep():
    n = remove_containers(RUN_LABEL)
    if n:
        print(f"test_world: removed {n} containers of earlier test runs, with their ports and netns links")


def run_container(name, labels, restart=True):
    args = ["docker", "run", "-d", "--net=none", "--name", name, "--label", f"{FOREIGN_LABEL}=1"]
    if restart:
        args += ["--restart=always"]
    for k, v in labels.items():
        args += ["--label", f"{k}={v}"]
    return sh(*args, IMAGE, "sleep", "1000000").stdout.strip()


def foreign_up(directory):
    foreign_down(directory, quiet=True)
    os.makedirs(directory, exist_ok=True)
    tag = "%06x" % random.randrange(1 << 24)
    instance = f"foreign-{tag}"
    net = f"10.{random.randrange(200, 250)}.{random.randrange(256)}"
    world = {"instance": instance, "containers": {}, "ports": {}, "state": os.path.join(directory, "state")}
    c = world["containers"]
    c[f"nkforeign-default-{tag}"] = run_container(f"nkforeign-default-{tag}", {"netkeep.eth1.bridge": BRIDGE, "netkeep.eth1.ip": "dhcp"})
    c[f"nkforeign-other-{tag}"] = run_container(f"nkforeign-other-{tag}", {
        "netkeep.instance": instance, "netkeep.eth1.bridge": BRIDGE, "netkeep.eth1.ip": f"{net}.5/24"})
    recorded = f"nkforeign-recorded-{tag}"
    c[recorded] = run_container(recorded, {})
    owner = f"nkforeign-ovsdocker-{tag}"
    c[owner] = run_container(owner, {})
    env = dict(os.environ, NETKEEP_INSTANCE=instance)
    r = subprocess.run([netkeep(), "attach", recorded, "--bridge", BRIDGE, "--ip", f"{net}.6/24", "--state-dir", world["state"]],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"test_world: the foreign attach failed: {r.stderr.strip()}")
    listed = json.loads(subprocess.run([netkeep(), "list", "--json", "--state-dir", world["state"]], env=env,
                                       capture_output=True, text=True, check=True).stdout)
    for row in listed:
        # The other instance's labelled container is listed too, declared: it has no port yet.
        if row.get("host_ifname"):
            world["ports"][row["host_ifname"]] = "netkeep's, another state directory's"
    for port, ids in [(f"nkfd{tag}_l", [f"external_ids:container_id={c[owner]}", "external_ids:container_iface=eth5"]),
                      (f"nkfp{tag}", [])]:
        sh("ip", "link", "add", port, "type", "veth", "peer", "name", port + "p")
        sh("ovs-vsctl", "--timeout=20", "add-port", BRIDGE, port, *(["--", "set", "Interface", port, *ids] if ids else []))
        world["ports"][port] = "ovs-docker's" if ids else "nobody's"
    world["rows"] = rows(world)
    world["state_bytes"] = open(os.path.join(world["state"], "state.json")).read()
    world["since_us"] = int(time.time() * 1_000_000)
    with open(os.path.join(directory, "world.json"), "w") as f:
        json.dump(world, f, indent=1)
    print(f"test_world: foreign world up: {len(c)} containers ({', '.join(sorted(c))}), ports {', '.join(sorted(world['ports']))}")


def rows(world):
    out = {}
    for port in world["ports"]:
        r = sh("ovs-vsctl", "--timeout=20", "--format=json", "--columns=name,external_ids", "list", "Interface", port, check=False)
        bridge = sh("ovs-vsctl", "--timeout=20", "port-to-br", port, check=False).stdout.strip()
        out[port] = [r.stdout.strip(), bridge]
    return out


def foreign_check(directory):
    with open(os.path.join(directory, "world.json")) as f:
        world = json.load(f)
    names = list(world["containers"]) + list(world["containers"].values()) + list(world["ports"])
    problems = []
    r = sh("journalctl", "-o", "json", "--no-pager", f"--since=@{world['since_us'] // 1_000_000 - 1}", "SYSLOG_IDENTIFIER=netkeep",
           check=False)
    audits = 0
    for line in r.stdout.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if "NETKEEP_ACTION" not in entry or int(entry.get("__REALTIME_TIMESTAMP", 0)) < world["since_us"]:
            continue
        audits += 1
        touched = [n for n in names if n in line]
        if touched:
            problems.append(f"audit entry {entry['NETKEEP_ACTION']} about {', '.join(touched)}: {entry.get('MESSAGE', '')}")
    now = rows(world)
    for port, before in world["rows"].items():
        if now.get(port) != before:
            problems.append(f"port {port} ({world['ports'][port]}) changed: {before} -> {now.get(port)}")
    state = open(os.path.join(world["state"], "state.json")).read()
    if state != world["state_bytes"]:
        problems.append("the foreign state file changed")
    for name, cid in world["containers"].items():
        if sh("docker", "inspect", "-f", "{{.Id}}", name, check=False).stdout.strip() != cid:
            problems.append(f"container {name} is gone or another one")
    if problems:
        print("test_world: the suite touched the foreign world:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"test_world: foreign world untouched ({audits} audit entries of the run checked, {len(now)} ports, "
          f"{len(world['containers'])} containers, the foreign state file)")


def foreign_down(directory, quiet=False):
    path = os.path.join(directory, "world.json")
    if os.path.exists(path):
        with open(path) as f:
            world = json.load(f)
        env = dict(os.environ, NETKEEP_INSTANCE=world["instance"])
        for name in world["containers"]:
            subprocess.run([netkeep(), "detach", name, "--state-dir", world["state"]], env=env, capture_output=True)
        for port in world["ports"]:
            sh("ovs-vsctl", "--timeout=20", "--if-exists", "del-port", port, check=False)
            sh("ip", "link", "del", port, check=False)
    n = remove_containers(f"{FOREIGN_LABEL}=1")
    subprocess.run(["rm", "-rf", directory])
    if not quiet:
        print(f"test_world: foreign world down ({n} containers removed)")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd = sys.argv[1]
    if cmd == "sweep":
        sweep()
    elif cmd in ("foreign-up", "foreign-check", "foreign-down") and len(sys.argv) == 3:
        {"foreign-up": foreign_up, "foreign-check": foreign_check, "foreign-down": foreign_down}[cmd](sys.argv[2])
    else:
        sys.exit(__doc__)
