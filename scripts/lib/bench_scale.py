"""The `scale` row of scripts/bench: N containers, each with one static (eth1)
and one DHCP (eth2) attachment on nk-bench0 (the bench's own dnsmasq, a /16
pool and a lease limit far above 2 x 500). Per N:

- recovery after `scripts/testbed reboot`: daemon start to READY=1, and to
  every one of the 2N addresses checked inside the containers;
- the daemon's RSS and CPU over an idle window right after;
- `netkeep list` (median of 9) with this state against an empty state;
- one more static `attach` (median of 3) into this state against an empty
  state: the difference is what loading, checking and saving the larger
  state file costs an attach."""
import os, statistics, time

from benchlib import (BR, NETKEEP, TESTBED, Containers, Daemon, addresses_of, attachments, cleanup_attachments, log,
                      median_time, sh, work)


def scale(n, idle_seconds=30):
    state = f"{work()}/state-scale-{n}"
    empty = f"{work()}/state-scale-empty-{n}"
    os.makedirs(empty, exist_ok=True)
    log(f"scale N={n}: {n} containers, a static and a DHCP attachment each")
    cs = Containers(f"sc{n}", n)
    extra = Containers(f"sc{n}x", 1)
    daemon = Daemon(state, f"scale-{n}")
    result = {"n": n, "attachments": 2 * n}
    try:
        t0 = time.monotonic()
        for i, name in enumerate(cs.names):
            sh(NETKEEP, "attach", name, "--bridge", BR, "--ifname", "eth1", "--ip", f"10.7.{i // 250}.{i % 250 + 2}/16", "--state-dir", state)
            sh(NETKEEP, "attach", name, "--bridge", BR, "--ifname", "eth2", "--dhcp", "--state-dir", state)
        log(f"scale N={n}: {2 * n} attachments made in {time.monotonic() - t0:.1f} s")
        expected = {(a["container_name"], a["ifname"]): a["address"].split("/")[0] for a in attachments(state)}
        result["state_bytes"] = os.path.getsize(f"{state}/state.json")

        # dockerd answers only once it has restarted every container with a
        # restart policy: well over the test bed's default 300 s for hundreds.
        docker_timeout = max(300, 2 * n)
        sh(TESTBED, "reboot", env={"NETKEEP_TESTBED_DOCKER_TIMEOUT": str(docker_timeout)}, timeout=docker_timeout + 900)
        cs.wait_running()
        extra.wait_running()
        t0 = time.monotonic()
        result["ready_s"] = daemon.start()
        pids = cs.pids()
        missing = set(expected)
        deadline = t0 + 300
        while missing and time.monotonic() < deadline:
            for name in sorted({c for c, _ in missing}):
                got = addresses_of(pids[name], ("eth1", "eth2"))
                for ifname in ("eth1", "eth2"):
                    if got[ifname] == expected[(name, ifname)]:
                        missing.discard((name, ifname))
            if missing:
                time.sleep(0.2)
        result["verified_s"] = time.monotonic() - t0
        result["verified"] = 2 * n - len(missing)
        log(f"scale N={n}: READY=1 after {result['ready_s']:.2f} s, {result['verified']}/{2 * n} verified after {result['verified_s']:.2f} s "
            f"(daemon log: {daemon.log_path})")

        cpu, rss, peak = daemon.usage(idle_seconds)
        result.update(idle_seconds=idle_seconds, cpu_pct=cpu, rss_mib=rss, peak_rss_mib=peak)
        daemon.stop()
        log(f"scale N={n}: idle {idle_seconds} s: CPU {cpu:.2f} %, RSS {rss:.1f} MiB (peak {peak:.1f})")

        result["list_ms"] = median_time(lambda: sh(NETKEEP, "list", "--state-dir", state), 9)
        result["list_empty_ms"] = median_time(lambda: sh(NETKEEP, "list", "--state-dir", empty), 9)
        name = extra.names[0]
        full, bare = [], []
        for _ in range(3):
            for where, samples in ((state, full), (empty, bare)):
                t = time.monotonic()
                sh(NETKEEP, "attach", name, "--bridge", BR, "--ip", "10.9.0.10/16", "--state-dir", where)
                samples.append((time.monotonic() - t) * 1000)
                sh(NETKEEP, "detach", name, "--state-dir", where)
        result["attach_ms"], result["attach_empty_ms"] = statistics.median(full), statistics.median(bare)
        log(f"scale N={n}: list {result['list_ms']:.1f} ms (empty state {result['list_empty_ms']:.1f} ms); one more attach "
            f"{result['attach_ms']:.1f} ms (empty state {result['attach_empty_ms']:.1f} ms); state file {result['state_bytes']} bytes")
        return result
    finally:
        daemon.stop()
        for where in (state, empty):
            sh(NETKEEP, "detach", extra.names[0], "--state-dir", where, check=False)
        extra.remove()
        cleanup_attachments(cs, state)


def table(results):
    head = ("N", "attachments", "READY=1 after reboot", "all verified", "verified", "list", "list (empty)",
            "attach", "attach (empty)", "RSS", "idle CPU", "state file")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        lines.append("| " + " | ".join([
            str(r["n"]), str(r["attachments"]), f"{r['ready_s']:.2f} s", f"{r['verified_s']:.2f} s", f"{r['verified']}/{r['attachments']}",
            f"{r['list_ms']:.1f} ms", f"{r['list_empty_ms']:.1f} ms", f"{r['attach_ms']:.1f} ms", f"{r['attach_empty_ms']:.1f} ms",
            f"{r['rss_mib']:.1f} MiB", f"{r['cpu_pct']:.2f} % ({r['idle_seconds']} s)", f"{r['state_bytes'] / 1024:.0f} KiB"]) + " |")
    return "\n".join(lines)


def plot(results, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ns = [r["n"] for r in results]
    panels = [
        ("recovery after reboot (s)", [("READY=1", "ready_s"), ("all verified", "verified_s")]),
        ("netkeep list (ms, median of 9)", [("this state", "list_ms"), ("empty state", "list_empty_ms")]),
        ("one more attach (ms, median of 3)", [("this state", "attach_ms"), ("empty state", "attach_empty_ms")]),
        ("daemon RSS (MiB)", [("RSS", "rss_mib"), ("peak", "peak_rss_mib")]),
        ("daemon idle CPU (%)", [("CPU", "cpu_pct")]),
        ("state file (KiB)", [("state.json", "state_kib")]),
    ]
    for r in results:
        r["state_kib"] = r["state_bytes"] / 1024
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    for ax, (label, series) in zip(axes.flat, panels):
        for name, key in series:
            ax.plot(ns, [r[key] for r in results], marker="o", label=name)
        ax.set_title(label)
        ax.set_xlabel("N containers (2N attachments)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
    for r in results:
        del r["state_kib"]
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
