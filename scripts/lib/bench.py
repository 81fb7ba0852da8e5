"""scripts/bench: netkeep against the manual way, on the real test bed.

DHCP rows use a bridge and DHCP server of their own (nk-bench0, dnsmasq with a
10.2.0.0/16 pool and --no-ping, so that 2 x 500 clients fit and the setup does
not wait for dnsmasq's 3 s probe of each new address; recovery after a reboot
asks for known addresses, which dnsmasq never probes). The parallel row uses
the test bed's own nk-br0 and dnsmasq, which does probe, and (parallel-server)
nk-slow0 with slow_dhcp.py, which takes as long per new address but answers
clients in parallel (benchlib.SlowDHCPNetwork). Shared helpers are in
benchlib.py; the parallel and together rows in bench_concurrency.py, the
labels and compose rows (containers that declare their attachment with
netkeep.* labels) in bench_labels.py, the scale row in bench_scale.py."""
import argparse, json, os, re, signal, time

import bench_cni, bench_concurrency, bench_labels, bench_plugin, bench_scale, benchlib
from benchlib import BR, NETKEEP, ROOT, TESTBED, BenchNetwork, Containers, Daemon, address_of, log, sh, work

rows = []


def recovery(n):
    """Seconds: netkeep (daemon start to READY=1) and the manual replay, same containers."""
    state = f"{work()}/state-{n}"
    cs = Containers(f"dhcp{n}", n)
    log(f"recovery N={n}: attaching with netkeep --dhcp")
    for name in cs.names:
        sh(NETKEEP, "attach", name, "--bridge", BR, "--dhcp", "--state-dir", state)
    recorded = {a["container_name"]: (a["address"].split("/")[0], a["mac"]) for a in
                json.loads(sh(NETKEEP, "list", "--json", "--state-dir", state).stdout)}
    sh(TESTBED, "reboot", timeout=900)
    cs.wait_running()
    # Its log (with the phase timings of the first reconcile) stays in the run's directory.
    daemon = Daemon(state, f"recovery-{n}")
    try:
        netkeep_s = daemon.start()
        log(f"recovery N={n}: READY=1 after {netkeep_s:.2f} s (daemon log: {daemon.log_path})")
        pids = cs.pids()
        netkeep_ok = sum(address_of(pids[name]) == recorded[name][0] for name in cs.names)
    finally:
        daemon.stop()
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
        sh("nsenter", "-t", str(pid), "-n", "dhclient", "-1", "-pf", f"{work()}/{name}.pid", "-lf", f"{work()}/{name}.leases", "eth1", check=False)

    def stop_dhclients():
        for name in cs.names:
            try:
                os.kill(int(open(f"{work()}/{name}.pid").read()), signal.SIGTERM)
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
    state = f"{work()}/state-gc"
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
    state = f"{work()}/state-gc-dhcp"
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
    leases = open(f"{work()}/leases").read()
    held = sum(mac in leases for mac in macs)
    return netkeep_s, removed, held


def latency(restarts):
    state = f"{work()}/state-latency"
    cs = Containers("lat", 2)
    sh(NETKEEP, "attach", cs.names[0], "--bridge", BR, "--ip", "10.5.0.10/16", "--state-dir", state)
    sh(NETKEEP, "attach", cs.names[1], "--bridge", BR, "--dhcp", "--state-dir", state)
    daemon = Daemon(state, "latency")
    out = {}
    try:
        daemon.start()
        for name, mode in zip(cs.names, ["static", "dhcp"]):
            r = sh("python3", os.path.join(ROOT, "scripts", "lib", "restart_latency.py"), name, str(restarts), timeout=1200)
            m = re.search(r"p50\s+([\d.]+) ms\s+p90\s+([\d.]+) ms\s+p99\s+([\d.]+) ms", r.stdout)
            out[mode] = tuple(float(x) for x in m.groups()) if m else None
    finally:
        daemon.stop()
    for name in cs.names:
        sh(NETKEEP, "detach", name, "--state-dir", state)
    cs.remove()
    return out


def idle(n, seconds):
    state = f"{work()}/state-idle"
    cs = Containers("idle", n)
    for i, name in enumerate(cs.names):
        sh(NETKEEP, "attach", name, "--bridge", BR, "--ip", f"10.6.{i // 200}.{i % 200 + 10}/16", "--state-dir", state)
    daemon = Daemon(state, "idle")
    try:
        daemon.start()
        usage = daemon.usage(seconds)
    finally:
        daemon.stop()
    for name in cs.names:
        sh(NETKEEP, "detach", name, "--state-dir", state)
    cs.remove()
    return usage


# parallel-server is also part of parallel; alone, it runs only that row.
ROWS = ("recovery", "latency", "gc", "gc-dhcp", "idle", "parallel", "parallel-server", "together", "labels", "compose", "plugin",
        "plugin-reboot", "cni", "cni-dhcp", "scale")
DEFAULT_ROWS = tuple(r for r in ROWS if r != "scale")


def arguments():
    p = argparse.ArgumentParser(prog="scripts/bench", description="netkeep's benchmark table on the real test bed")
    p.add_argument("--quick", action="store_true", help="small sizes: N = 20, 30 restarts, 20 s idle")
    p.add_argument("--only", metavar="ROW[,ROW]", help="run only these rows: " + ", ".join(ROWS))
    p.add_argument("--scale", metavar="N[,N]", help="sizes of the scale row (alone, it runs only that row)")
    p.add_argument("--count", type=int, default=20, help="containers of the parallel and together rows (default 20)")
    p.add_argument("--idle-seconds", type=int, default=30, help="idle window of the scale row (default 30)")
    p.add_argument("--results", metavar="PATH", help="write every row's results as JSON")
    p.add_argument("--plot", metavar="PATH", help="plot the scale row's metrics against N (PNG, matplotlib)")
    a = p.parse_args()
    if a.only:
        a.rows = [r.strip() for r in a.only.split(",") if r.strip()]
        unknown = [r for r in a.rows if r not in ROWS]
        if unknown:
            p.error(f"unknown row {', '.join(unknown)} (rows: {', '.join(ROWS)})")
    else:
        a.rows = ["scale"] if a.scale else list(DEFAULT_ROWS)
    a.sizes = [int(x) for x in a.scale.split(",")] if a.scale else ([20, 50] if a.quick else [50, 200])
    return a


def main():
    global QUICK
    args = arguments()
    QUICK = args.quick
    run = set(args.rows)
    details = {}
    sizes = [20] if QUICK else [50, 200]
    with BenchNetwork():
      try:
        if "recovery" in run:
          for n in sizes:
            nk, nk_ok, man, man_ok = recovery(n)
            rows.append((f"recovery of {n} DHCP attachments after a reboot", f"{nk:.2f} s ({nk_ok}/{n} verified)",
                         f"{man:.1f} s ({man_ok}/{n})", f"{man / nk:.0f}x", "<= 2 s, >= 50x" if n == 200 else ""))
        if "latency" in run:
          lat = latency(30 if QUICK else 100)
          for mode in ("static", "dhcp"):
            if lat.get(mode):
                p50, p90, p99 = lat[mode]
                rows.append((f"repair after docker restart ({mode})", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", "-", "-",
                             "p50 <= 20 ms, p99 <= 100 ms"))
        n = 50 if QUICK else 200
        if "gc" in run:
          nk, removed, man = garbage_collection(n)
          rows.append((f"GC of {n} removed containers' ports", f"{nk:.2f} s ({removed} removed)", f"{man:.1f} s", f"{man / nk:.0f}x", "<= 1 s"))
        if "gc-dhcp" in run:
          nk, removed, held = dhcp_garbage_collection(n)
          rows.append((f"GC of {n} removed DHCP containers, leases released", f"{nk:.2f} s ({removed} removed, {held} leases still held)",
                       "-", "-", "every lease released"))
        if "idle" in run:
          cpu, rss, peak = idle(n, 20 if QUICK else 60)
          rows.append((f"daemon idle with {n} attachments, {20 if QUICK else 60} s", f"RSS {rss:.1f} MiB (peak {peak:.1f}), CPU {cpu:.2f} %", "-", "-",
                       "RSS <= 30 MB, CPU <= 0.5 %"))
        if "parallel" in run or "parallel-server" in run:
          modes = bench_concurrency.PARALLEL_MODES if "parallel" in run else ("dhcp-parallel-server",)
          more, details["parallel"] = bench_concurrency.parallel_rows(args.count, modes)
          rows.extend(more)
        if "together" in run:
          more, details["together"] = bench_concurrency.together_rows(args.count)
          rows.extend(more)
        if "labels" in run:
          more, details["labels"] = bench_labels.labels_rows(10 if QUICK else 30)
          rows.extend(more)
        if "compose" in run:
          more, details["compose"] = bench_labels.compose_rows(20)
          rows.extend(more)
        if "plugin" in run:
          more, details["plugin"] = bench_plugin.plugin_rows(5 if QUICK else 15)
          rows.extend(more)
        if "plugin-reboot" in run:
          more, details["plugin_reboot"] = bench_plugin.reboot_rows(20, 1 if QUICK else 3)
          rows.extend(more)
        if "cni" in run:
          more, details["cni"] = bench_cni.cni_rows(5 if QUICK else 20)
          rows.extend(more)
        if "cni-dhcp" in run:
          more, details["cni_dhcp"] = bench_cni.cni_dhcp_rows(5 if QUICK else 20)
          rows.extend(more)
        if "scale" in run:
          details["scale"] = []
          for n in args.sizes:
            details["scale"].append(bench_scale.scale(n, args.idle_seconds))
      finally:
        for cs in benchlib.ALL_CONTAINERS:
            cs.remove()
        title = f"netkeep benchmarks, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, {NETKEEP}"
        if args.results:
            with open(args.results, "w") as f:
                json.dump({"title": title, "binary": NETKEEP, "baseline": os.environ.get("NETKEEP_BASELINE_BIN"), "cores": os.cpu_count(),
                           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": [list(r) for r in rows], **details}, f, indent=2)
            log(f"results written to {args.results}")
    print(title)
    if rows:
        print("| measurement | netkeep | manual (seed) / baseline | ratio | target / note |")
        print("|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    if details.get("scale"):
        print()
        print(bench_scale.table(details["scale"]))
        if args.plot:
            bench_scale.plot(details["scale"], args.plot, title)
            log(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
