"""Rows of scripts/bench where many things happen at once:

- parallel: n `netkeep attach` processes started at the same moment, DHCP on
  the test bed's own bridge and dnsmasq (which pings a new address for about
  3 s before offering it), then static, then DHCP against a server that also
  takes 3 s per new lease but answers every client meanwhile (slow_dhcp.py on
  a bridge of its own, benchlib.SlowDHCPNetwork: dnsmasq answers nothing
  while it pings, so against it the n attaches are serialized by the server);
  the same with NETKEEP_BASELINE_BIN when it is set.
- together: the daemon with n attachments (static, then DHCP) and
  `docker restart` of all n at the same moment (n parallel `docker restart`
  calls); per container, the latency from its `start` event to the daemon's
  journal entry of the repair, and to the address appearing (RTM_NEWADDR)."""
import os, random, re, subprocess, time

from benchlib import (BR, NETKEEP, TESTBED_BRIDGE, TESTBED_RUN, AddressWatch, Containers, Daemon, SlowDHCPNetwork, address_of,
                      addresses_of, attachments, docker_events, journal, log, percentile, sh, wait_until, work)

MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}


def launch_together(commands):
    """Starts every command before waiting for any; returns (total wall s,
    [(exit code, seconds from the common start to its end, stderr)])."""
    t0 = time.monotonic()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    ends = [None] * len(procs)
    errors = [""] * len(procs)
    # Each is waited for in order; the end times come from polling all of them.
    pending = set(range(len(procs)))
    while pending:
        for i in list(pending):
            if procs[i].poll() is not None:
                ends[i] = time.monotonic() - t0
                pending.discard(i)
        if pending:
            time.sleep(0.01)
    for i, p in enumerate(procs):
        errors[i] = p.stderr.read().strip()
        p.stderr.close()
    return max(ends), [(p.returncode, ends[i], errors[i]) for i, p in enumerate(procs)]


def dhcp_log(path, offset, macs):
    """dnsmasq's DHCP lines after `offset` for these MACs: [(epoch s, kind, mac)]
    (the log has whole seconds)."""
    try:
        with open(path, errors="replace") as f:
            f.seek(offset)
            return dhcp_log_text(f.read(), macs)
    except OSError:
        return []


def dhcp_log_text(text, macs):
    """The DHCP lines of a piece of dnsmasq's log (macs None: every line with a MAC)."""
    out = []
    year = time.localtime().tm_year
    for line in text.splitlines():
        m = re.match(r"(\w{3})\s+(\d+) (\d\d):(\d\d):(\d\d) dnsmasq-dhcp\[\d+\]: (?:\d+ )?(DHCP[A-Z]+)\(\S+\)(.*)", line)
        if not m:
            continue
        mac = next((t.lower() for t in m.group(7).split() if (t.lower() in macs if macs is not None else t.count(":") == 5)), None)
        if mac:
            t = time.mktime((year, MONTHS[m.group(1)], int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)), 0, 0, -1))
            out.append((t, m.group(6), mac))
    return out


def last_offer(path):
    """Epoch seconds of the last DHCPOFFER in dnsmasq's log (0 when none)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 256 * 1024))
            tail = f.read().decode(errors="replace")
    except OSError:
        return 0
    times = [t for t, kind, _ in dhcp_log_text(tail, None) if kind == "DHCPOFFER"]
    return max(times, default=0)


def wait_ping_window(path):
    """dnsmasq pings a new address before offering it, but only 6 times in
    30 s (do_icmp_ping: more than 60 % of PING_CACHE_TIME / PING_WAIT =
    30 s / 3 s is "high-load mode", no ping). Each DHCP variant starts after
    30 s without an offer, so that every run meets the same server."""
    wait_until(lambda: time.time() - last_offer(path) >= 31, 120, "dnsmasq's 30 s ping window to pass", 0.5)


PARALLEL_MODES = ("dhcp", "static", "dhcp-parallel-server")
# slow_dhcp.py's wait before it offers a new address (dnsmasq's ping: PING_WAIT).
SERVER_OFFER_DELAY = 3.0


def parallel(n, mode, binary=NETKEEP, label="netkeep"):
    """n attaches started together; mode is "dhcp" (nk-br0, the test bed's
    dnsmasq), "static" or "dhcp-parallel-server" (a fresh SlowDHCPNetwork:
    its bridge, namespace and server exist for this run only)."""
    if mode == "dhcp-parallel-server":
        with SlowDHCPNetwork(SERVER_OFFER_DELAY) as net:
            return run_parallel(n, mode, binary, label, net)
    return run_parallel(n, mode, binary, label, None)


def run_parallel(n, mode, binary, label, net):
    bridge = net.BRIDGE if net else TESTBED_BRIDGE
    state = f"{work()}/state-parallel-{label}-{mode}"
    cs = Containers(f"par-{label[:4]}-{'psrv' if net else mode}", n)
    subnet = f"10.{random.randint(200, 249)}.{random.randint(0, 255)}"
    dnsmasq_log = os.path.join(TESTBED_RUN, "dnsmasq.log")
    try:
        if mode == "dhcp":
            wait_ping_window(dnsmasq_log)
        offset = os.path.getsize(dnsmasq_log) if os.path.exists(dnsmasq_log) else 0
        pick = (lambda i: ["--ip", f"{subnet}.{10 + i}/24"]) if mode == "static" else (lambda i: ["--dhcp"])
        log(f"parallel ({label}, {mode}): {n} attaches to {bridge} started together")
        started = time.monotonic()
        total, outcomes = launch_together([[binary, "attach", name, "--bridge", bridge, *pick(i), "--state-dir", state]
                                           for i, name in enumerate(cs.names)])
        recorded = {a["container_name"]: a for a in attachments(state, binary)} if os.path.exists(f"{state}/state.json") else {}
        pids = cs.pids()
        addressed = 0
        for name in cs.names:
            a = recorded.get(name)
            if a and a.get("address") and address_of(pids[name]) == a["address"].split("/")[0]:
                addressed += 1
        result = {"label": label, "binary": binary, "mode": mode, "n": n, "total_s": total,
                  "exit_codes": [c for c, _, _ in outcomes], "ends_s": [e for _, e, _ in outcomes], "addressed": addressed,
                  "errors": sorted({e.splitlines()[-1] for c, _, e in outcomes if c != 0 and e})}
        ends = sorted(result["ends_s"])
        log(f"parallel ({label}, {mode}): all done after {total:.2f} s; exit codes {sorted(result['exit_codes'])}; "
            f"{addressed}/{n} have their address; ends at " + " ".join(f"{e:.2f}" for e in ends))
        for e in result["errors"]:
            log(f"parallel ({label}, {mode}): error: {e}")
        if mode == "dhcp":
            macs = {a["mac"].lower() for a in recorded.values()}
            events = dhcp_log(dnsmasq_log, offset, macs)
            # dnsmasq logs a DISCOVER when it answers it (after its ping), so
            # only the OFFER times tell: whole seconds, relative to the first.
            offers = sorted(t for t, kind, _ in events if kind == "DHCPOFFER")
            gaps = [b - a for a, b in zip(offers, offers[1:])]
            slow = sum(g >= 2 for g in gaps)
            result.update(offers=len(offers), offer_offsets_s=[t - offers[0] for t in offers] if offers else [], offer_gaps_2s=slow)
            verdict = ("serialized" if gaps and slow >= len(gaps) / 2 else f"partly serialized ({slow} of {len(gaps)} gaps >= 2 s)"
                       if slow else "not serialized")
            note = (f"dnsmasq log: {len(offers)} offers, {verdict}, at +" + " +".join(f"{t - offers[0]:.0f}" for t in offers) + " s"
                    " (dnsmasq pings at most 6 new addresses per 30 s, then offers at once)"
                    if offers else "dnsmasq log: no offers found for these MACs")
            end_gaps = [b - a for a, b in zip(ends, ends[1:])]
            late = sum(g >= 2 for g in end_gaps)
            if late:
                note += (f"; {late} attaches ended 2 s or more after the one before (attach holds netkeep's state lock"
                         " through its DHCP exchange: each waits for the previous one's)")
            result["note"] = note
            log(f"parallel ({label}, {mode}): {note}")
        if net:
            result.update(server_note(net, started, ends, n))
            log(f"parallel ({label}, {mode}): {result['note']}")
        return result
    finally:
        for name in cs.names:
            sh(binary, "detach", name, "--state-dir", state, check=False)
        cs.remove()


def server_note(net, started, ends, n):
    """What slow_dhcp.py's log says of a run started at `started` (monotonic
    s), with the attaches' end times: the results and the row's note."""
    seen = net.offers(started)
    offers = sorted(o - started for _, o, _ in seen.values() if o is not None)
    waits = sorted(o - d for d, o, _ in seen.values() if d is not None and o is not None)
    acks = sum(a is not None for _, _, a in seen.values())
    out = {"offer_offsets_s": offers, "discover_to_offer_s": waits, "acks": acks, "clients": len(seen),
           "end_spread_s": ends[-1] - ends[0] if ends else None}
    note = (f"ends {ends[0]:.2f}-{ends[-1]:.2f} s after the start (spread {ends[-1] - ends[0]:.2f} s); " if ends else "")
    if offers:
        out["offer_span_s"] = offers[-1] - offers[0]
        note += (f"server log: {len(offers)} OFFERs at +{offers[0]:.2f} to +{offers[-1]:.2f} s (span {offers[-1] - offers[0]:.2f} s), "
                 f"DISCOVER to OFFER {waits[0]:.2f}-{waits[-1]:.2f} s, {acks} ACKs; target: all {n} done within 4 s")
    else:
        note += "server log: no OFFERs"
    out["note"] = note
    return out


def parallel_rows(n, modes=PARALLEL_MODES):
    """The table rows of `parallel` (netkeep, and the baseline binary when set)."""
    baseline = os.environ.get("NETKEEP_BASELINE_BIN")
    results, rows = [], []
    for mode in modes:
        runs = [parallel(n, mode)]
        if baseline:
            runs.append(parallel(n, mode, baseline, "baseline"))
        results += runs

        def cell(r):
            ok = sum(c == 0 for c in r["exit_codes"])
            return f"{r['total_s']:.2f} s ({ok}/{r['n']} exit 0, {r['addressed']}/{r['n']} addressed)"
        what = (f"dhcp, a server that takes {SERVER_OFFER_DELAY:g} s per new lease and answers in parallel"
                if mode == "dhcp-parallel-server" else f"{mode}{', ' + TESTBED_BRIDGE + ' dnsmasq with ping' if mode == 'dhcp' else ''}")
        rows.append((f"{n} attaches at once ({what}), all done",
                     cell(runs[0]), ("baseline " + cell(runs[1])) if baseline else "-",
                     f"{runs[1]['total_s'] / runs[0]['total_s']:.1f}x" if baseline else "-", runs[0].get("note", "")))
    return rows, results


def together(n, mode):
    """The daemon with n attachments of `mode` on nk-bench0; all n containers
    restarted at once. Latency per container from its `start` event (Docker's
    timeNano) to the daemon's journal entry "repaired" (NETKEEP_ACTION=repair,
    the writer's own timestamp) and to the RTM_NEWADDR of its eth1 address."""
    state = f"{work()}/state-together-{mode}"
    cs = Containers(f"tog-{mode}", n)
    daemon = Daemon(state, f"together-{mode}")
    try:
        for i, name in enumerate(cs.names):
            how = ["--dhcp"] if mode == "dhcp" else ["--ip", f"10.8.{i // 250}.{i % 250 + 2}/16"]
            sh(NETKEEP, "attach", name, "--bridge", BR, *how, "--state-dir", state)
        expected = {a["container_name"]: a["address"].split("/")[0] for a in attachments(state)}
        daemon.start()
        watch = AddressWatch()
        since = time.time() - 0.5
        log(f"together ({mode}): {n} parallel `docker restart -t 0` calls")
        restart_s, outcomes = launch_together([["docker", "restart", "-t", "0", name] for name in cs.names])
        failed = [name for name, (c, _, _) in zip(cs.names, outcomes) if c != 0]
        if failed:
            raise RuntimeError(f"docker restart failed for {failed}")

        def starts():
            got = {}
            for name, nano in docker_events(since, "start"):
                if name in expected:
                    got.setdefault(name, nano)
            return got if len(got) == n else None
        start = wait_until(starts, 60, f"{n} start events", 0.2)
        journal_works = os.path.exists("/run/systemd/journal/socket")

        def repairs():
            got = {}
            for e in journal(since, NETKEEP_ACTION="repair"):
                name = e.get("NETKEEP_CONTAINER_NAME")
                if name in start and e["t_ns"] >= start[name]:
                    got[name] = min(got.get(name, e["t_ns"]), e["t_ns"])
            return got if len(got) == n else None
        repaired = {}
        if journal_works:
            try:
                repaired = wait_until(repairs, 60, f"{n} repair entries in the journal", 0.2)
            except RuntimeError as e:
                log(f"together ({mode}): {e}")
                repaired = {}
        # Every address back inside its container (its new namespace).
        pids = wait_until(lambda: (lambda p: p if all(v > 0 for v in p.values()) else None)(cs.pids()), 60, "new PIDs")
        wait_until(lambda: all(addresses_of(pids[name])["eth1"] == expected[name] for name in cs.names), 60,
                   "every address back inside the containers", 0.2)
        noticed = {name: watch.first_after(start[name], expected[name], timeout=0.5) for name in cs.names}
        by_journal = sorted((repaired[name] - start[name]) / 1e6 for name in repaired)
        by_address = sorted((t - start[name]) / 1e6 for name, t in noticed.items() if t)
        start_span = (max(start.values()) - min(start.values())) / 1e9
        result = {"mode": mode, "n": n, "docker_restart_wall_s": restart_s, "start_span_s": start_span,
                  "journal_ms": by_journal, "address_ms": by_address}
        for key, values in (("journal", by_journal), ("address", by_address)):
            if values:
                result[key] = {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": values[-1], "count": len(values)}
        log(f"together ({mode}): start events over {start_span:.2f} s; "
            + "; ".join(f"{k}: p50 {v['p50']:.1f} p99 {v['p99']:.1f} max {v['max']:.1f} ms ({v['count']}/{n})"
                        for k, v in ((k, result.get(k)) for k in ("journal", "address")) if v))
        return result
    finally:
        daemon.stop()
        for name in cs.names:
            sh(NETKEEP, "detach", name, "--state-dir", state, check=False)
        cs.remove()


def together_rows(n):
    rows, results = [], []
    for mode in ("static", "dhcp"):
        r = together(n, mode)
        results.append(r)
        for key, what in (("journal", "the daemon's journal entry 'repaired'"), ("address", "address on eth1 (RTM_NEWADDR)")):
            v = r.get(key)
            rows.append((f"{n} containers restarted at once ({mode}): start event to {what}",
                         f"p50 {v['p50']:.1f}, p99 {v['p99']:.1f}, max {v['max']:.1f} ms ({v['count']}/{n})" if v else "not measured",
                         "-", "-", f"start events spread over {r['start_span_s']:.2f} s"))
    return rows, results
