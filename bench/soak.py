"""A bounded soak test: the release Worker under several hundred clients for minutes.

`bash scripts/soak` prepares everything and runs this file; see bench/README.md.

It serves the release Worker with `workerd serve` (no wrangler) next to the S3 stub,
which checks every signature it sees, as the benchmark does (run.py). After a smoke pass
of each flow, load-generating processes (soak_client.py) run `--clients` clients for
`--seconds`, mixing single uploads, multipart uploads taken to completion or aborted,
part batches of 1 to 10,000 URLs, part lists, downloads and bad requests. Every
`--interval` seconds this process records the requests answered, their latency, the
answers by status class, and workerd's memory (VmRSS) and CPU time.

Results go to bench/results/: soak.json, soak.md and soak.png. The exit status is 1 when
any answer was 5xx or not what its request should get, when the store refused a presigned
URL or accepted a tampered one, or when no presigned URL was checked at all.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import shutil
import subprocess
import sys
import time
from array import array
from collections import Counter
from pathlib import Path

import soak_client
from run import (BUILD_OUTPUTS, RESULTS, Worker, bench_settings, busy_processes,
                 cpu_seconds, ensure_build, free_port, left_out_bindings, machine_busy_seconds,
                 machine_facts, request, start_workerd, stop, wait_for_health, workerd_config)

BENCH = Path(__file__).resolve().parent
MIB = 1024 * 1024
# A second profile beside wrangler.toml's `default` (and the benchmark's 80 GiB
# `bench-multipart`): documents only, 20 MiB at most, in parts of 5 MiB from 10 MiB on.
DOCS_PROFILE = {"bucket": "dev", "keyTemplate": "docs/{subject}/{uuid}/{filename}",
                "contentTypes": ["application/pdf", "text/plain"], "maxSize": 20 * MIB,
                "expiresIn": 300, "multipartThreshold": 10 * MIB, "partSize": 5 * MIB}


def log(message):
    print(f"soak: {message}", file=sys.stderr, flush=True)


def soak_settings(store_port):
    compatibility_date, flags, variables, secrets = bench_settings(store_port)
    variables["PROFILES"]["soak-docs"] = DOCS_PROFILE
    return compatibility_date, flags, variables, secrets


# ---------------------------------------------------------------------------------------
# Reading the processes

def rss_kib(pid, field="VmRSS"):
    """A memory figure of /proc/<pid>/status, in KiB (VmRSS now, VmHWM the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def listen_overflows():
    """Connections the kernel dropped because a listen backlog was full, machine-wide
    (TcpExt ListenOverflows of /proc/net/netstat): each waits a second to try again."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split())).get("ListenOverflows", 0))
    return 0


class Sampler:
    """CPU seconds and memory of workerd, the stub and the load generators (with this
    process), and the machine's busy time, read at each interval's end."""

    def __init__(self, workerd_pid, stub_pid, generator_pids):
        self.workerd, self.stub, self.generators = workerd_pid, stub_pid, generator_pids
        self.generator_cpu = {pid: 0.0 for pid in generator_pids}

    def read(self):
        for pid in self.generators:
            try:
                self.generator_cpu[pid] = cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError):
                pass  # exited: its last reading stands
        return {"t": time.monotonic(), "machine_s": machine_busy_seconds(),
                "workerd_s": cpu_seconds(self.workerd), "workerd_rss_kib": rss_kib(self.workerd),
                "stub_s": cpu_seconds(self.stub), "stub_rss_kib": rss_kib(self.stub),
                "generators_s": sum(self.generator_cpu.values()) + cpu_seconds(os.getpid())}


# ---------------------------------------------------------------------------------------
# Adding up what the clients sent

def percentile(values, share):
    """Nearest-rank percentile of sorted values."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(share * len(values)) - 1))]


def status_class(status):
    return f"{status // 100}xx" if isinstance(status, int) else "error"


class Totals:
    """Everything the clients reported, interval by interval and over the whole run."""

    def __init__(self):
        self.by_interval = {}  # index -> merged messages
        self.latency = {}  # kind -> array of ms, whole run
        self.statuses = Counter()
        self.unexpected = Counter()
        self.samples = []
        self.checks = Counter()

    def add(self, index, message):
        merged = self.by_interval.setdefault(index, {
            "statuses": Counter(), "latency": array("d"), "unexpected": 0,
            "checks": Counter()})
        for kind, status, count in message["statuses"]:
            merged["statuses"][status_class(status)] += count
            self.statuses[(kind, status)] += count
        for kind, raw in message["latency"].items():
            values = array("d")
            values.frombytes(raw)
            merged["latency"].extend(values)
            self.latency.setdefault(kind, array("d")).extend(values)
        for kind, expected, got, count in message["unexpected"]:
            merged["unexpected"] += count
            self.unexpected[(kind, expected, got)] += count
        for sample in message["samples"]:
            seen = {(x["kind"], x["got"]) for x in self.samples}
            if len(self.samples) < 10 and (sample["kind"], sample["got"]) not in seen:
                self.samples.append(sample)
        merged["checks"].update(message["checks"])
        self.checks.update(message["checks"])


def interval_rows(totals, samples, start, args):
    """One row per interval: the clients' numbers and the processes' readings."""
    rows = (interval_row(totals, samples, start, args, i) for i in sorted(totals.by_interval))
    return [row for row in rows if row]


def interval_row(totals, samples, start, args, index):
    merged = totals.by_interval.get(index)
    if merged is None or index + 1 >= len(samples):
        return None  # no answers yet, or after the last reading
    before, after = samples[index], samples[index + 1]
    wall = after["t"] - before["t"]
    latency = sorted(merged["latency"])
    ours = sum(after[k] - before[k] for k in ("workerd_s", "stub_s", "generators_s"))
    return {
        "index": index,
        "end_s": round(after["t"] - start, 1),
        "seconds": wall,
        "requests": len(latency),
        "rps": len(latency) / wall,
        "p50_ms": percentile(latency, 0.50),
        "p99_ms": percentile(latency, 0.99),
        "max_ms": latency[-1] if latency else None,
        "statuses": dict(merged["statuses"]),
        "unexpected": merged["unexpected"],
        "puts_accepted": merged["checks"]["put_accepted"],
        "puts_refused": merged["checks"]["put_refused"],
        "workerd_rss_mib": after["workerd_rss_kib"] / 1024,
        "stub_rss_mib": after["stub_rss_kib"] / 1024,
        "workerd_cpu": (after["workerd_s"] - before["workerd_s"]) / wall,
        "stub_cpu": (after["stub_s"] - before["stub_s"]) / wall,
        "generators_cpu": (after["generators_s"] - before["generators_s"]) / wall,
        "others_cpu": max(0.0, after["machine_s"] - before["machine_s"] - ours) / wall,
        "drain": index * args.interval >= args.seconds,
    }


def by_kind(totals):
    table = {}
    for kind, values in sorted(totals.latency.items()):
        ordered = sorted(values)
        statuses = {str(s): n for (k, s), n in totals.statuses.items() if k == kind}
        table[kind] = {"requests": len(ordered), "p50_ms": percentile(ordered, 0.5),
                       "p99_ms": percentile(ordered, 0.99), "max_ms": ordered[-1],
                       "statuses": statuses}
    return table


def slope_mib_per_min(rows):
    """The least-squares slope of workerd's RSS over the second half of the run."""
    half = [r for r in rows if not r["drain"]][len(rows) // 2:]
    if len(half) < 3:
        return None
    xs = [r["end_s"] / 60 for r in half]
    ys = [r["workerd_rss_mib"] for r in half]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread if spread else None


def failures(totals, stub_stats):
    """Why the run fails; empty when it passes."""
    found = []
    fivexx = sum(n for (_, s), n in totals.statuses.items() if status_class(s) == "5xx")
    if fivexx:
        found.append(f"{fivexx} answers were 5xx")
    unexpected = sum(totals.unexpected.values())
    if unexpected:
        found.append(f"{unexpected} answers were not what their request should get "
                     "(or no answer came)")
    checks = totals.checks
    for name, what in (("put_refused", "presigned PUTs were refused by the store"),
                       ("put_unreachable", "presigned PUTs could not reach the store"),
                       ("tamper_accepted", "PUTs with another content type were accepted"),
                       ("list_mismatch", "part lists did not show the part just sent"),
                       ("complete_again_mismatch", "repeated completions answered another "
                        "ETag"),
                       ("malformed_answer", "answers lacked a field the API promises")):
        if checks[name]:
            found.append(f"{checks[name]} {what}")
    if not checks["put_accepted"]:
        found.append("no presigned URL was checked by the store")
    refused = stub_stats.get("stats", {}).get("header-signed refused", 0)
    if refused:
        found.append(f"the store refused {refused} of the Worker's own signed requests")
    return found


# ---------------------------------------------------------------------------------------
# The run

def run_load(args, config, workerd, store):
    """Starts the load generators, reads the processes every interval, and returns the
    clients' totals, the readings and the start time."""
    messages = multiprocessing.Queue()
    start = time.monotonic() + 1.0
    config = {**config, "start_at": start}
    processes, first = [], 0
    for number in range(args.processes):
        count = args.clients // args.processes + (number < args.clients % args.processes)
        process = multiprocessing.Process(
            target=soak_client.generate, args=({**config, "process": number}, first, count,
                                               messages), daemon=True)
        process.start()
        processes.append(process)
        first += count
    sampler = Sampler(workerd.pid, store.pid, [p.pid for p in processes])
    totals, samples, done = Totals(), [], 0

    def drain(until):
        nonlocal done
        while True:
            try:
                _, index, message = messages.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                return
            if index == "done":
                done += 1
            else:
                totals.add(index, message)

    drain(start)
    samples.append(sampler.read())
    index = 0
    while done < len(processes):
        boundary = start + (index + 1) * args.interval
        drain(boundary)
        samples.append(sampler.read())
        if workerd.poll() is not None:
            raise RuntimeError(f"workerd exited with status {workerd.returncode}")
        if any(p.exitcode not in (None, 0) for p in processes):
            raise RuntimeError("a load-generating process failed")
        drain(time.monotonic() + 0.3)  # the clients' numbers of the interval just ended
        print_progress(totals, samples, start, index, args)
        index += 1
        if index * args.interval > args.seconds + 4 * args.timeout:
            raise RuntimeError("the load generators did not finish")
    for process in processes:
        process.join()
    return totals, samples, start


def print_progress(totals, samples, start, index, args):
    r = interval_row(totals, samples, start, args, index)
    if r is None:
        return
    classes = " ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
    log(f"{r['end_s']:5.0f} s: {r['rps']:6.0f} req/s, p50 {r['p50_ms'] or 0:6.1f} ms, "
        f"p99 {r['p99_ms'] or 0:6.1f} ms, {classes}, unexpected {r['unexpected']}, "
        f"workerd {r['workerd_rss_mib']:.0f} MiB, {r['workerd_cpu'] * 100:.0f} % CPU, "
        f"load generator {r['generators_cpu'] * 100:.0f} %")


def stub_stats(port):
    try:
        status, data = request(port, "GET", "/_stub/stats", timeout=10)
        return json.loads(data) if status == 200 else {}
    except OSError:
        return {}


def wait_for_stub(port, process, deadline_s=30):
    started = time.monotonic()
    while not stub_stats(port):
        if process.poll() is not None or time.monotonic() - started > deadline_s:
            raise RuntimeError("the S3 stub did not start")
        time.sleep(0.05)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300,
                        help="how long the clients run (default 300)")
    parser.add_argument("--clients", type=int, default=400,
                        help="concurrent clients, one connection each (default 400)")
    parser.add_argument("--short", action="store_true",
                        help="a smoke soak: 20 s and 50 clients, unless given")
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds between readings (default 5)")
    parser.add_argument("--processes", type=int, default=1,
                        help="load-generating processes (default 1)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds a client waits for an answer (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="of the clients' choices")
    args = parser.parse_args()
    if args.short:
        explicit = set(a.split("=")[0] for a in sys.argv[1:])
        if "--seconds" not in explicit:
            args.seconds = 20
        if "--clients" not in explicit:
            args.clients = 50
    return args


def main():
    args = parse_args()
    RESULTS.mkdir(exist_ok=True)
    ensure_build()

    # Serve a copy, so that a rebuild during the run changes nothing.
    served = RESULTS / "soak-worker"
    served.mkdir(exist_ok=True)
    for output in BUILD_OUTPUTS:
        shutil.copy2(output, served / output.name)
    worker = Worker("edge-presigner", "edge-presigner (Rust, wasm)",
                    [("index.js", "esModule", served / "index.js"),
                     ("index_bg.wasm", "wasm", served / "index_bg.wasm")],
                    [served / "index_bg.wasm"], port=free_port())

    store_port = free_port()
    settings = soak_settings(store_port)
    variables, secrets = settings[2], settings[3]
    bucket = variables["BUCKETS"]["dev"]
    issuer = variables["AUTH"]["jwt"][0]
    config = {
        "worker_port": worker.port, "api_key": secrets["API_KEY_DEMO"],
        "jwt_secret": secrets[issuer["secret"]],
        "jwt_claims": {"iss": issuer["issuer"], "aud": issuer["audience"]},
        "seconds": args.seconds, "interval_s": args.interval, "timeout_s": args.timeout,
        "seed": args.seed,
    }
    results = {"machine": machine_facts([worker]), "settings": {
        "seconds": args.seconds, "clients": args.clients, "interval_s": args.interval,
        "processes": args.processes, "timeout_s": args.timeout, "seed": args.seed,
        "flows": soak_client.FLOWS, "put_share": soak_client.PUT_SHARE,
        "batches": soak_client.BATCHES}}
    results["left_out_bindings"] = left_out_bindings()

    store = subprocess.Popen(
        [sys.executable, str(BENCH / "s3stub.py"), str(store_port),
         secrets[f"{bucket['credentials']}_ACCESS_KEY_ID"],
         secrets[f"{bucket['credentials']}_SECRET_ACCESS_KEY"]],
        stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    workerd = None
    try:
        config_path = RESULTS / "soak-workerd.capnp"
        config_path.write_text(workerd_config([worker], *settings))
        log_path = RESULTS / "soak-workerd.log"
        log_path.unlink(missing_ok=True)
        workerd = start_workerd(config_path, log_path)
        wait_for_health(worker.port, workerd)
        wait_for_stub(store_port, store)
        results["workerd_rss_mib_idle"] = rss_kib(workerd.pid) / 1024

        log("smoke pass: each flow once")
        smoke = asyncio.run(soak_client.smoke({**config, "seconds": 60}))
        smoke_problems = [f"smoke pass: {s['kind']} answered {s['got']}, expected "
                          f"{s['expected']}: {s['body']}" for s in smoke.samples]
        smoke_problems += [f"smoke pass: {name} {count}" for name, count in smoke.checks.items()
                           if name != "put_accepted" and name != "tamper_refused"]
        if smoke_problems:
            raise SystemExit("soak: " + "\n".join(smoke_problems))

        log(f"{args.clients} clients for {args.seconds} s, readings every {args.interval} s")
        results["busy_processes_before_load"] = busy_processes()
        overflows = listen_overflows()
        totals, samples, start = run_load(args, config, workerd, store)
        results["listen_overflows"] = listen_overflows() - overflows
        results["workerd_rss_mib_peak"] = rss_kib(workerd.pid, "VmHWM") / 1024
        results["stub"] = stub_stats(store_port)
    finally:
        stop(workerd)
        stop(store)

    rows = interval_rows(totals, samples, start, args)
    measured = [r for r in rows if not r["drain"]]
    all_latency = sorted(v for values in totals.latency.values() for v in values)
    classes = Counter()
    for (_, status), count in totals.statuses.items():
        classes[status_class(status)] += count
    results["intervals"] = rows
    results["kinds"] = by_kind(totals)
    results["totals"] = {
        "requests": len(all_latency),
        "rps": sum(r["requests"] for r in measured) / max(1e-9, sum(
            r["seconds"] for r in measured)),
        "p50_ms": percentile(all_latency, 0.50),
        "p99_ms": percentile(all_latency, 0.99),
        "p999_ms": percentile(all_latency, 0.999),
        "max_ms": all_latency[-1] if all_latency else None,
        "statuses": dict(classes),
        "unexpected": [{"kind": k, "expected": e, "got": g, "count": n}
                       for (k, e, g), n in totals.unexpected.items()],
        "unexpected_samples": totals.samples,
        "checks": dict(totals.checks),
        "workerd_rss_mib_start": samples[0]["workerd_rss_kib"] / 1024,
        "workerd_rss_mib_end": samples[-1]["workerd_rss_kib"] / 1024,
        "workerd_rss_mib_per_min_second_half": slope_mib_per_min(rows),
        "workerd_log_bytes": log_path.stat().st_size if log_path.exists() else 0,
    }
    results["failures"] = failures(totals, results["stub"])
    (RESULTS / "soak.json").write_text(json.dumps(results, indent=2) + "\n")

    import soak_report
    markdown = soak_report.markdown(results)
    (RESULTS / "soak.md").write_text(markdown)
    soak_report.chart(results, RESULTS / "soak.png")
    print(markdown)
    log("wrote bench/results/soak.md, soak.json and soak.png")
    if results["failures"]:
        log("FAILED: " + "; ".join(results["failures"]))
        sys.exit(1)
    log("passed: no 5xx, no unexpected answer, every presigned URL checked was accepted")


if __name__ == "__main__":
    main()
