"""Rows of scripts/bench for containers that declare their attachment with
labels (netkeep.eth1.bridge / netkeep.eth1.ip), which the daemon attaches at
their `start` event:

- labels: with the daemon running on nk-bench0, labelled containers started
  one after another (each waits for the address of the one before, so that
  the latencies are per container, not queued): static addresses; then DHCP
  with new MACs; then those DHCP containers removed (`docker rm -f`, their
  records `retained` with MAC and lease) and started again under the same
  names and labels, so that each takes its predecessor's MAC and lease over
  and gets its address back by INIT-REBOOT ("DHCP with a known MAC"). Per
  container: Docker's `start` event (timeNano) to the RTM_NEWADDR of eth1
  (benchlib.AddressWatch) and to the daemon's journal entry (NETKEEP_ACTION
  =create, NETKEEP_REASON=declared-by-labels); p50/p99/max.
- compose: a compose file of 20 DHCP services (network_mode none, labels
  only) in the run's directory; `docker-compose up -d`, every address
  recorded, then `docker-compose up -d --force-recreate -t 0`: from the last
  new container's `start` event to the moment all 20 addresses are back (and
  how many are the same), and the wall time of the recreate command.

The daemon's console log has no time stamps: StampedDaemon prefixes each
line with the epoch time it arrived at, so that the log also tells where a
container's time went (event received, labels declared, the repair's own
phase timings: claim, load, observe ..., execute ..., save)."""
import os, re, statistics, subprocess, threading, time

from benchlib import (ALL_CONTAINERS, BR, IMAGE, NETKEEP, TAG, AddressWatch, Containers, Daemon, addresses_of, attachments,
                      docker_events, journal, log, percentile, sh, wait_until, work)

LABELS_TARGET = "p50 <= 20 ms, p99 <= 100 ms"
COMPOSE_TARGET = "all back within 1 s of the last start"
BENCH_POOL = "10.2."  # BenchNetwork's DHCP pool, 10.2.0.0/16
PHASE = re.compile(r"([a-z][a-z ]*?) ([\d.]+) ms")


class Named(Containers):
    """Containers of these names that the bench runs itself (labelled, or
    made by docker-compose); removed with the others at the end of the run."""

    def __init__(self, names):  # noqa: super().__init__ would run them
        self.names = list(names)
        ALL_CONTAINERS.append(self)


class StampedDaemon(Daemon):
    """Daemon whose log lines (in the run's directory, as Daemon's) start with
    the epoch time at which they arrived; `lines` keeps them, (time_ns, text)."""

    def spawn(self, env):
        self.lines, self.cond = [], threading.Condition()
        self.proc = subprocess.Popen([self.binary, "daemon", "--foreground", "-v", "--state-dir", self.state, *self.extra],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        with open(self.log_path, "w") as out:
            for raw in iter(self.proc.stdout.readline, b""):
                now = time.time_ns()
                text = raw.decode(errors="replace").rstrip("\n")
                out.write(f"{now / 1e9:.6f} {text}\n")
                out.flush()
                with self.cond:
                    self.lines.append((now, text))
                    self.cond.notify_all()

    def stop(self):
        super().stop()
        if self.proc is not None:
            self.reader.join(10)
            self.proc.stdout.close()

    def wait_line(self, after_ns, needle, timeout):
        """The time of the first line at or after `after_ns` containing `needle`, or None."""
        def find():
            return next((t for t, text in self.lines if t >= after_ns and needle in text), None)
        with self.cond:
            self.cond.wait_for(lambda: find() is not None, timeout)
            return find()

    def first(self, after_ns, needle):
        with self.cond:
            return next(((t, text) for t, text in self.lines if t >= after_ns and needle in text), (None, None))


def wait_address(watch, after_ns, match, timeout):
    """(time_ns, address) of the first eth1 RTM_NEWADDR at or after `after_ns`
    whose address satisfies `match`, or (None, None)."""
    def find():
        return next(((t, a) for t, l, a in watch.seen if t >= after_ns and l == "eth1" and a and match(a)), None)
    with watch.cond:
        watch.cond.wait_for(lambda: find() is not None, timeout)
        return find() or (None, None)


def inspect(names):
    """{name: (full id, PID)} of the containers that exist."""
    r = sh("docker", "inspect", "-f", "{{.Name}} {{.Id}} {{.State.Pid}}", *names, check=False)
    out = {}
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) == 3:
            out[f[0].lstrip("/")] = (f[1], int(f[2]))
    return out


def stats(values):
    values = sorted(values)
    if not values:
        return None
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": values[-1], "count": len(values)}


def fmt(s, n):
    return f"p50 {s['p50']:.1f}, p99 {s['p99']:.1f}, max {s['max']:.1f} ms ({s['count']}/{n})" if s else "not measured"


def label_args(name, ip):
    return ["--label", f"netkeep.eth1.bridge={BR}", "--label", f"netkeep.eth1.ip={ip}"]


def breakdown(daemon, names, ids, start):
    """From the stamped daemon log, per container: start event -> "Docker
    event start" line (received), -> "declare:" line (inspect, attach's checks,
    the pending record saved), -> the "repair of ..." line of the pass that
    follows (its own, or a batch's), and that pass's phase timings. Returns (per-phase medians in ms,
    {name: {...}})."""
    per = {}
    for name in names:
        if name not in start:
            continue
        s = start[name]
        got, _ = daemon.first(s - 50_000_000, f"Docker event start for {name}")
        dec, _ = daemon.first(s, f"declare: {name} ")
        # The pass that follows the declaration on the daemon's one worker:
        # the first "repair of ..." line after it (its own, or the batch's
        # "repair of N containers after the events").
        rep, text = daemon.first(dec, "repair of ") if dec else daemon.first(s, f"repair of {ids[name][:12]} after the event")
        entry = {"received_ms": (got - s) / 1e6 if got else None,
                 "declared_ms": (dec - s) / 1e6 if dec else None,
                 "repaired_ms": (rep - s) / 1e6 if rep else None, "phases": {}}
        if text:
            entry["phases"] = {k.strip(): float(v) for k, v in PHASE.findall(re.split(r"after the events?:", text, maxsplit=1)[1])}
            entry["batch"] = " containers after the events:" in text
        per[name] = entry
    medians = {}
    for key in ("received_ms", "declared_ms", "repaired_ms"):
        vals = [e[key] for e in per.values() if e[key] is not None]
        if vals:
            medians[key] = statistics.median(vals)
    phases = sorted({k for e in per.values() for k in e["phases"]})
    for k in phases:
        vals = [e["phases"].get(k, 0.0) for e in per.values() if e["phases"]]
        medians[f"phase {k}"] = statistics.median(vals)
        medians[f"phase {k} max"] = max(vals)
    return medians, per


def describe(medians):
    parts = [f"event received +{medians['received_ms']:.1f}" if "received_ms" in medians else None,
             f"declared +{medians['declared_ms']:.1f}" if "declared_ms" in medians else None,
             f"repair logged +{medians['repaired_ms']:.1f} ms" if "repaired_ms" in medians else None]
    phases = ", ".join(f"{k[6:]} {v:.1f}" for k, v in medians.items() if k.startswith("phase ") and not k.endswith(" max"))
    return "median: " + ", ".join(p for p in parts if p) + (f"; pass phases (median ms): {phases}" if phases else "")


def sequential(daemon, watch, names, ip_of, expect, what):
    """Runs the labelled containers one after another, each after the one
    before has its address and its repair is logged. `ip_of(i)` is the label
    value, `expect(name)` a predicate on the address the container must get.
    Returns the per-container measurements."""
    since = time.time()
    since_ns = int(since * 1e9)
    got = {}
    for i, name in enumerate(names):
        t0 = time.time_ns()
        r = sh("docker", "run", "-d", "--network", "none", "--name", name, *label_args(name, ip_of(i)), IMAGE, "sleep", "1000000")
        cid = r.stdout.strip()
        t, address = wait_address(watch, t0, expect(name), 10)
        if t is None:
            log(f"labels ({what}): {name} got no address within 10 s")
        elif daemon.wait_line(t0, f"repair of {cid[:12]} after the event", 5) is None:
            log(f"labels ({what}): no repair logged for {name} within 5 s")
        got[name] = address
    # Every start event and journal entry of the phase, at once.
    start = {}
    for name, nano in docker_events(since, "start"):
        if name in got and nano >= since_ns:
            start.setdefault(name, nano)
    made = {}
    for e in journal(since, NETKEEP_ACTION="create"):
        name = e.get("NETKEEP_CONTAINER_NAME")
        if name in start and e.get("NETKEEP_REASON") == "declared-by-labels" and e["t_ns"] >= start[name]:
            if name not in made or e["t_ns"] < made[name][0]:
                made[name] = (e["t_ns"], e.get("MESSAGE", ""))
    ids_pids = inspect(names)
    inside = {name: addresses_of(pid)["eth1"] for name, (_, pid) in ids_pids.items()}
    address_ms, journal_ms = [], []
    for name in names:
        if name in start and got.get(name):
            t = watch.first_after(start[name], got[name], timeout=0.5)
            if t:
                address_ms.append((t - start[name]) / 1e6)
        if name in made:
            journal_ms.append((made[name][0] - start[name]) / 1e6)
    medians, per = breakdown(daemon, names, {n: v[0] for n, v in ids_pids.items()}, start)
    result = {"what": what, "n": len(names), "address_ms": sorted(address_ms), "journal_ms": sorted(journal_ms),
              "address": stats(address_ms), "journal": stats(journal_ms), "breakdown": medians, "per_container": per,
              "addresses": got, "inside_ok": sum(inside.get(n) == got.get(n) and got.get(n) is not None for n in names),
              "recreated_entries": sum("recreated: container" in made[n][1] for n in made)}
    log(f"labels ({what}): address {fmt(result['address'], len(names))}; journal {fmt(result['journal'], len(names))}; "
        f"{result['inside_ok']}/{len(names)} addresses checked inside; {describe(medians)}")
    slow = sorted(((e["repaired_ms"] or 0, n) for n, e in per.items()), reverse=True)[:3]
    for ms, n in slow:
        log(f"labels ({what}): slowest: {n}: received {per[n]['received_ms']}, declared {per[n]['declared_ms']}, repaired {ms} ms; "
            + ", ".join(f"{k} {v}" for k, v in per[n]["phases"].items()))
    return result


def records(state):
    return attachments(state) if os.path.exists(f"{state}/state.json") else []


def detach_all(state):
    """Every record of the state directory detached by its container id (the
    daemon stopped first): ports, links, records and leases."""
    for a in records(state):
        sh(NETKEEP, "detach", a["container_id"], "--state-dir", state, check=False)
    left = records(state)
    if left:
        log(f"cleanup: {len(left)} records left in {state}")


def remove_and_retain(cs, state, names, timeout=60):
    """docker rm -f, then wait until the daemon has every record of these names `retained`."""
    cs.remove()
    names = set(names)

    def retained():
        rs = [a for a in records(state) if a["container_name"] in names]
        return rs if {a["container_name"] for a in rs} == names and all(a["status"] == "retained" for a in rs) else None
    return wait_until(retained, timeout, f"{len(names)} records retained", 0.3)


def cleanup(cs, daemon, state):
    """The containers removed, the daemon stopped (by its PID), every record
    detached (detach works when the container is gone, retained or not)."""
    cs.remove()
    daemon.stop()
    detach_all(state)


def labels(n=30):
    """The labels rows: static, DHCP with a new MAC, DHCP recreated (known MAC)."""
    state = f"{work()}/state-labels"
    watch = AddressWatch()
    daemon = StampedDaemon(state, "labels")
    static = Named(f"nkbench-{TAG}-lbs-{i}" for i in range(n))
    dhcp = Named(f"nkbench-{TAG}-lbd-{i}" for i in range(n))
    both = Named(static.names + dhcp.names)
    ips = {name: f"10.9.{i // 250}.{i % 250 + 2}" for i, name in enumerate(static.names)}
    results = {}
    try:
        daemon.start()
        log(f"labels: {n} labelled containers with static addresses, one after another")
        results["static"] = sequential(daemon, watch, static.names, lambda i: f"{ips[static.names[i]]}/16",
                                       lambda name: (lambda a: a == ips[name]), "static")
        static.remove()
        log(f"labels: {n} labelled DHCP containers (new MACs), one after another")
        results["dhcp-new"] = sequential(daemon, watch, dhcp.names, lambda i: "dhcp", lambda name: (lambda a: a.startswith(BENCH_POOL)),
                                         "dhcp, new MAC")
        before = {a["container_name"]: a for a in records(state) if a["container_name"] in set(dhcp.names) and a["status"] == "ready"}
        log(f"labels: removing the {n} DHCP containers; waiting for their records to be retained")
        t0 = time.monotonic()
        kept = {a["container_name"]: a for a in remove_and_retain(dhcp, state, dhcp.names)}
        log(f"labels: {len(kept)} records retained after {time.monotonic() - t0:.1f} s")
        kept_address = {name: ((a.get("lease") or {}).get("address") or a.get("address") or "").split("/")[0] for name, a in kept.items()}
        log(f"labels: {n} DHCP containers recreated under the same names and labels, one after another")
        r = sequential(daemon, watch, dhcp.names, lambda i: "dhcp",
                       lambda name: (lambda a: a == kept_address[name]) if kept_address.get(name) else (lambda a: a.startswith(BENCH_POOL)),
                       "dhcp, known MAC (recreated)")
        after = {a["container_name"]: a for a in records(state) if a["container_name"] in set(dhcp.names) and a["status"] == "ready"}
        r["same_address"] = sum(m in after and m in before and after[m]["address"] == before[m]["address"] for m in dhcp.names)
        r["same_mac"] = sum(m in after and m in before and after[m]["mac"] == before[m]["mac"] for m in dhcp.names)
        r["recreated_from"] = sum(bool(after.get(m, {}).get("recreated_from")) for m in dhcp.names)
        log(f"labels (recreated): {r['same_address']}/{n} same address, {r['same_mac']}/{n} same MAC, "
            f"{r['recreated_from']}/{n} with recreated_from, {r['recreated_entries']}/{n} journal entries say recreated")
        results["dhcp-recreated"] = r
        return results
    finally:
        cleanup(both, daemon, state)


def labels_rows(n=30):
    results = labels(n)
    rows = []
    for key, what in (("static", "static"), ("dhcp-new", "DHCP, new MAC"), ("dhcp-recreated", "DHCP, known MAC: recreated, lease retained")):
        r = results[key]
        if key == "dhcp-new":
            note = "no target (a new lease: DISCOVER, OFFER, REQUEST, ACK; dnsmasq --no-ping)"
        elif key == "dhcp-recreated":
            note = f"{LABELS_TARGET}; {r['same_address']}/{n} same address, {r['same_mac']}/{n} same MAC"
        else:
            note = LABELS_TARGET
        rows.append((f"{n} labelled containers started one at a time ({what}): start event to address (RTM_NEWADDR)",
                     fmt(r["address"], n), "-", "-", note))
        rows.append((f"{n} labelled containers started one at a time ({what}): start event to journal 'create' (declared-by-labels)",
                     fmt(r["journal"], n), "-", "-", describe(r["breakdown"])))
    return rows, results


COMPOSE_SERVICE = """  s{i}:
    image: {image}
    command: sleep 1000000
    network_mode: none
    labels:
      netkeep.eth1.bridge: {bridge}
      netkeep.eth1.ip: dhcp
"""


def compose(n=20):
    """docker-compose up -d of n labelled DHCP services, then up -d --force-recreate -t 0."""
    state = f"{work()}/state-compose"
    project = f"nkbench-{TAG}-compose"
    path = f"{work()}/compose-{TAG}.yml"
    with open(path, "w") as f:
        f.write('version: "2.4"\n\nservices:\n' + "".join(COMPOSE_SERVICE.format(i=i, image=IMAGE, bridge=BR) for i in range(n)))
    names = [f"{project}_s{i}_1" for i in range(n)]
    cs = Named(names)
    dc = ["docker-compose", "-p", project, "-f", path]
    watch = AddressWatch()
    daemon = StampedDaemon(state, "compose")
    try:
        daemon.start()
        log(f"compose: docker-compose up -d of {n} labelled DHCP services")
        since_ns = time.time_ns()
        t0 = time.monotonic()
        sh(*dc, "up", "-d", timeout=300)
        up_s = time.monotonic() - t0
        pids = {name: pid for name, (_, pid) in inspect(names).items()}
        first = wait_until(lambda: (lambda got: got if all(got.values()) else None)({name: addresses_of(pids[name])["eth1"] for name in names}),
                           60, f"{n} addresses after up", 0.2)
        seen = [watch.first_after(since_ns, first[name], timeout=0.5) for name in names]
        up_all_s = (max(seen) - since_ns) / 1e9 if all(seen) else float("nan")
        before = {a["container_name"]: a for a in records(state) if a["status"] == "ready"}
        log(f"compose: up -d took {up_s:.2f} s; all {n} addressed {up_all_s:.2f} s after it began")
        time.sleep(1)

        log("compose: docker-compose up -d --force-recreate -t 0")
        since = time.time()
        since_ns = int(since * 1e9)
        t0 = time.monotonic()
        sh(*dc, "up", "-d", "--force-recreate", "-t", "0", timeout=300)
        recreate_s = time.monotonic() - t0
        # Wait cheaply (the watch) for the old addresses, then ask Docker for the start events.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(watch.first_after(since_ns, first[name], timeout=0) for name in names):
            time.sleep(0.1)
        start = {}
        for name, nano in docker_events(since, "start"):
            if name in set(names) and nano >= since_ns:
                start.setdefault(name, nano)
        if len(start) != n:
            raise RuntimeError(f"compose: {len(start)}/{n} start events after the recreate")
        new = inspect(names)
        now_addr = wait_until(lambda: (lambda got: got if all(got.values()) else None)({name: addresses_of(new[name][1])["eth1"] for name in names}),
                              30, f"{n} addresses after the recreate", 0.2)
        back = {name: watch.first_after(start[name], now_addr[name], timeout=0.5) for name in names}
        same = sum(now_addr[name] == first[name] for name in names)
        last_start = max(start.values())
        missing = [name for name in names if not back[name]]
        all_back_ms = (max(back.values()) - last_start) / 1e6 if not missing else None
        per_ms = sorted((back[name] - start[name]) / 1e6 for name in names if back[name])
        start_span = (last_start - min(start.values())) / 1e6
        time.sleep(0.5)
        after = {a["container_name"]: a for a in records(state) if a["status"] == "ready"}
        same_mac = sum(name in after and name in before and after[name]["mac"] == before[name]["mac"] for name in names)
        medians, per = breakdown(daemon, names, {name: v[0] for name, v in new.items()}, start)
        batches = [text for t, text in daemon.lines if t >= since_ns and re.search(r"repair of .* after the event", text)]
        last = max(start, key=start.get)
        per_last = per.get(last, {})
        result = {"n": n, "up_s": up_s, "up_all_addressed_s": up_all_s, "recreate_wall_s": recreate_s, "start_span_ms": start_span,
                  "last_start_to_all_back_ms": all_back_ms, "missing": missing, "same_address": same, "same_mac": same_mac,
                  "start_to_address": stats(per_ms), "start_to_address_ms": per_ms, "breakdown": medians, "repairs_logged": batches,
                  "last_started": {"name": last, **{k: per_last.get(k) for k in ("received_ms", "declared_ms", "repaired_ms", "batch")},
                                   "address_ms": (back[last] - start[last]) / 1e6 if back[last] else None}}
        log(f"compose: recreate command {recreate_s:.2f} s; start events over {start_span:.0f} ms; last start -> all {n} back "
            + (f"{all_back_ms:.0f} ms" if all_back_ms is not None else f"not all ({len(missing)} missing)")
            + f"; {same}/{n} same address, {same_mac}/{n} same MAC; per container {fmt(result['start_to_address'], n)}")
        ls = result["last_started"]
        log(f"compose: the last started ({last}): event received +{ls['received_ms']}, declared +{ls['declared_ms']}, "
            f"repair logged +{ls['repaired_ms']} ms (batched: {ls['batch']}), address +{ls['address_ms']} ms")
        for text in batches:
            log(f"compose: daemon: {text}")
        return result
    finally:
        sh(*dc, "down", "-t", "0", check=False, timeout=300)
        cleanup(cs, daemon, state)


def compose_rows(n=20):
    r = compose(n)
    v = r["last_start_to_all_back_ms"]
    return [(f"docker-compose up -d --force-recreate of {n} labelled DHCP services: last start event to all {n} addresses back",
             (f"{v:.0f} ms" if v is not None else f"{n - len(r['missing'])}/{n} back") + f" ({r['same_address']}/{n} same address, "
             f"{r['same_mac']}/{n} same MAC; recreate command {r['recreate_wall_s']:.2f} s)",
             "-", "-", f"<= 1 s; start events spread over {r['start_span_ms']:.0f} ms; per container {fmt(r['start_to_address'], n)}")], r
