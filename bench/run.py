"""Benchmark edge-presigner against two JavaScript Workers that sign the same uploads.

`bash scripts/bench` prepares everything and runs this file; see bench/README.md.

One `workerd serve` process (no wrangler, no proxy) serves the three Workers on three
loopback ports with the same variables and secrets. For each Worker it measures:

- `GET /v1/health` (the no-op baseline) and `POST /v1/uploads` (one presigned PUT) with
  wrk: requests/s, p50 and p99 latency, and workerd's CPU time per request;
- `POST /v1/multipart/parts` with 100, 1,000 and 10,000 part numbers, one request at a
  time: wall time per request, CPU per request and per URL;
- the size of the code it ships, raw and gzip, and the time from starting workerd with
  only that Worker to its first 200.

workerd's CPU time is read from /proc/<pid>/stat (utime + stime, every thread) before and
after each measured run. The Workers run one after the other, so each delta belongs to
one Worker and one route. The S3 stub, wrk and this script run in other processes.

Results go to bench/results/: results.json, RESULTS.md and chart.png.
"""

import argparse
import gzip
import hashlib
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
WORKERD = ROOT / "node_modules/@cloudflare/workerd-linux-64/bin/workerd"
BUILD_LOCK = ROOT / "target/.e2e-build.lock"  # shared with the e2e harness
BUILD_OUTPUTS = [ROOT / "build/index.js", ROOT / "build/index_bg.wasm"]
BUILD_INPUTS = [ROOT / "src", ROOT / "Cargo.toml", ROOT / "Cargo.lock"]

MIB = 1024 * 1024
BATCH_SIZES = [100, 1_000, 10_000]
MULTIPART_PROFILE = "bench-multipart"
# 10,000 parts of the default 8 MiB part size.
MULTIPART_SIZE = 10_000 * 8 * MIB
SINGLE_BODY = {
    "filename": "holiday photo.png",
    "contentType": "image/png",
    "size": 1_048_576,
    "metadata": {"caption": "benchmark"},
}


@dataclass
class Worker:
    name: str
    label: str
    modules: list  # (module name, kind, source path)
    shipped: list  # files whose size is reported
    port: int = 0


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Preparing: the build of our Worker, the configuration, the ports

def newest_mtime(path):
    if not path.exists():
        return 0.0
    if path.is_file():
        return path.stat().st_mtime
    return max([path.stat().st_mtime] + [newest_mtime(p) for p in path.iterdir()])


def ensure_build():
    """Builds the release Worker when build/ is missing or older than the sources."""
    def fresh():
        if not all(p.exists() for p in BUILD_OUTPUTS):
            return False
        newest_input = max(newest_mtime(p) for p in BUILD_INPUTS)
        return min(p.stat().st_mtime for p in BUILD_OUTPUTS) >= newest_input

    if os.environ.get("BENCH_PREBUILT") == "1":
        if not all(p.exists() for p in BUILD_OUTPUTS):
            sys.exit("bench: BENCH_PREBUILT=1 but build/ holds no Worker")
        log("using the Worker already in build/ (BENCH_PREBUILT=1)")
        return
    if fresh():
        return
    BUILD_LOCK.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            BUILD_LOCK.mkdir()
            break
        except FileExistsError:
            if time.time() - BUILD_LOCK.stat().st_mtime > 20 * 60:
                shutil.rmtree(BUILD_LOCK, ignore_errors=True)
            time.sleep(0.5)
    try:
        if not fresh():
            log("building the release Worker (bash scripts/build-worker)")
            env = {**os.environ, "EDGE_PRESIGNER_PREBUILT": ""}
            subprocess.run(["bash", "scripts/build-worker"], cwd=ROOT, env=env, check=True)
    finally:
        shutil.rmtree(BUILD_LOCK, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env_file(path):
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def bench_settings(store_port):
    """wrangler.toml's [vars] and .dev.vars.example's secrets, with every bucket moved to
    the S3 stub and one more profile that allows a 10,000-part upload."""
    wrangler = tomllib.loads((ROOT / "wrangler.toml").read_text())
    variables = wrangler["vars"]
    for name, bucket in variables["BUCKETS"].items():
        variables["BUCKETS"][name] = {
            "provider": "s3-compatible",
            "endpoint": f"http://127.0.0.1:{store_port}",
            "bucket": bucket["bucket"],
            "credentials": bucket["credentials"],
        }
    default = variables["PROFILES"]["default"]
    variables["PROFILES"][MULTIPART_PROFILE] = {**default, "maxSize": MULTIPART_SIZE}
    secrets = read_env_file(ROOT / ".dev.vars.example")
    flags = wrangler.get("compatibility_flags", [])
    return wrangler["compatibility_date"], flags, variables, secrets


def left_out_bindings():
    """The bindings of wrangler.toml other than [vars] that the benchmark does not give."""
    wrangler = tomllib.loads((ROOT / "wrangler.toml").read_text())
    left = []
    for section, value in wrangler.items():
        if section in ("vars", "name", "main", "compatibility_date", "compatibility_flags",
                       "build"):
            continue
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            if isinstance(entry, dict):
                name = entry.get("name") or entry.get("binding") or ""
                left.append(f"[{section}] {name}".strip())
    return left


def capnp_text(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def workerd_config(workers, compatibility_date, flags, variables, secrets):
    """The text of a workerd configuration, to be written into bench/results/ (capnp
    resolves `embed` paths from the configuration's folder)."""
    kinds = {"esModule": "esModule", "wasm": "wasm"}
    bindings = [f"(name = {capnp_text(n)}, json = {capnp_text(json.dumps(v))})"
                for n, v in variables.items()]
    bindings += [f"(name = {capnp_text(n)}, text = {capnp_text(v)})" for n, v in secrets.items()]
    binding_list = ",\n    ".join(bindings)
    services, sockets, definitions = [], [], []
    for i, worker in enumerate(workers):
        services.append(f'(name = "{worker.name}", worker = .worker{i})')
        sockets.append(f'(name = "{worker.name}", address = "127.0.0.1:{worker.port}", '
                       f'http = (), service = "{worker.name}")')
        modules = ",\n    ".join(
            f"(name = {capnp_text(name)}, {kinds[kind]} = "
            f"embed {capnp_text(os.path.relpath(path, RESULTS))})"
            for name, kind, path in worker.modules)
        definitions.append(f"""const worker{i} :Workerd.Worker = (
  modules = [
    {modules},
  ],
  compatibilityDate = "{compatibility_date}",
  compatibilityFlags = [{", ".join(capnp_text(f) for f in flags)}],
  globalOutbound = "loopback",
  bindings = [
    {binding_list},
  ],
);""")
    services.append('(name = "loopback", network = (allow = ["local"]))')
    service_list = ",\n    ".join(services)
    socket_list = ",\n    ".join(sockets)
    worker_list = "\n\n".join(definitions)
    return f"""# Written by bench/run.py: the benchmark's Workers in one workerd, on 127.0.0.1.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    {service_list},
  ],
  sockets = [
    {socket_list},
  ],
);

{worker_list}
"""


# ---------------------------------------------------------------------------------------
# Processes and measurements

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of every thread of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds_fine(pid):
    """The same from the scheduler (/proc/<pid>/task/*/schedstat, nanoseconds): a check of
    the 10 ms resolution of stat, over the threads alive now."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def machine_busy_seconds():
    """CPU time the whole machine spent outside idle, from the first line of /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class Meter:
    """workerd's CPU time over one measured run, and what else ran on the machine then:
    the load generator (this script's children), this script, the S3 stub, and the rest
    (other people's processes), so that a noisy run can be told from a quiet one."""

    def __init__(self, workerd_pid, stub_pid):
        self.pids = (workerd_pid, stub_pid)

    def __enter__(self):
        self.start = self._read()
        return self

    def __exit__(self, *exc):
        end = self._read()
        d = {k: end[k] - self.start[k] for k in end}
        self.workerd_s = d["workerd"]
        self.workerd_fine_s = d["workerd_fine"]
        ours = d["workerd"] + d["stub"] + d["self"] + d["children"]
        self.others_s = max(0.0, d["machine"] - ours)
        self.wall_s = d["wall"]
        self.load = {"wall_s": d["wall"], "workerd_s": d["workerd"],
                     "load_generator_and_script_s": d["self"] + d["children"],
                     "s3_stub_s": d["stub"], "other_processes_s": self.others_s}

    def _read(self):
        import resource
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "wall": time.perf_counter(),
            "machine": machine_busy_seconds(),
            "workerd": cpu_seconds(self.pids[0]),
            "workerd_fine": cpu_seconds_fine(self.pids[0]),
            "stub": cpu_seconds(self.pids[1]),
            "self": me.ru_utime + me.ru_stime,
            "children": children.ru_utime + children.ru_stime,
        }


def busy_processes(seconds=1.0, threshold=0.05):
    """Processes that used more than `threshold` of a core over `seconds`, before the run."""
    def sample():
        found = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            comm = text[text.index("(") + 1:text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            found[stat.parent.name] = (comm, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
        return found

    before = sample()
    time.sleep(seconds)
    after = sample()
    busy = []
    for pid, (comm, cpu) in after.items():
        share = (cpu - before.get(pid, (comm, cpu))[1]) / seconds
        if share >= threshold and int(pid) != os.getpid():
            busy.append(f"{comm} {share * 100:.0f} %")
    return sorted(busy)


def start_workerd(config_path, log_path):
    log_file = open(log_path, "ab")
    return subprocess.Popen([str(WORKERD), "serve", str(config_path)], stdout=log_file,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop(process):
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def request(port, method, path, body=None, key=None, timeout=60):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {}
        if body is not None:
            headers["content-type"] = "application/json"
        if key:
            headers["authorization"] = f"Bearer {key}"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_for_health(port, process, deadline_s=30):
    """Polls GET /v1/health; returns the seconds until the first 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < deadline_s:
        if process.poll() is not None:
            raise RuntimeError(f"workerd exited with status {process.returncode}")
        try:
            status, _ = request(port, "GET", "/v1/health", timeout=5)
            if status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.002)
    raise RuntimeError(f"no 200 from port {port} within {deadline_s} s")


def cold_start(worker, settings, repeats):
    """Starts workerd with this Worker alone, `repeats` times; seconds to the first 200."""
    times = []
    for attempt in range(repeats):
        worker_copy = Worker(**{**worker.__dict__, "port": free_port()})
        config = RESULTS / f"cold-{worker.name}.capnp"
        config.write_text(workerd_config([worker_copy], *settings))
        process = start_workerd(config, RESULTS / "workerd-cold.log")
        try:
            times.append(wait_for_health(worker_copy.port, process))
        finally:
            stop(process)
    return times


def run_wrk(url, duration, connections, method="GET", body_file=None, key=None):
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_BODY_FILE": str(body_file or ""),
           "BENCH_KEY": key or ""}
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
               "-s", str(BENCH / "post.lua"), url]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    return json.loads(line[len("BENCH "):])


@dataclass
class Route:
    path: str
    method: str = "GET"
    body_file: Path = None
    key: str = None
    status: int = 200  # what every answer must be


def load_run(meter, worker, route, duration, args):
    """One measured wrk run, with workerd's CPU time around it."""
    url = f"http://127.0.0.1:{worker.port}{route.path}"
    with meter:
        result = run_wrk(url, duration, args.connections, route.method, route.body_file,
                         route.key)
    errors = dict(result["errors"])
    if route.status >= 400:
        # wrk counts every answer that is not 2xx or 3xx as a status error.
        errors["status"] = result["requests"] - errors["status"]
    if sum(errors.values()):
        raise RuntimeError(f"{worker.name} {route.method} {route.path}: unexpected answers "
                           f"or errors in wrk: {errors}")
    seconds = result["duration_us"] / 1e6
    return {
        "requests": result["requests"],
        "seconds": seconds,
        "rps": result["requests"] / seconds,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "cpu_s": meter.workerd_s,
        "cpu_fine_s": meter.workerd_fine_s,
        "cpu_us_per_request": meter.workerd_s / result["requests"] * 1e6,
        "machine": meter.load,
    }


class Retries:
    """Runs a measurement again while other processes kept the machine busy during it,
    within a time budget for the whole benchmark, and keeps the quietest try."""

    def __init__(self, budget_s, threshold):
        self.left_s = budget_s
        self.threshold = threshold
        self.count = 0

    @staticmethod
    def others_share(result):
        return result["machine"]["other_processes_s"] / result["machine"]["wall_s"]

    def measure(self, run):
        best = run()
        best["tries"] = 1
        while (self.others_share(best) > self.threshold
               and self.left_s >= best["machine"]["wall_s"]):
            started = time.perf_counter()
            again = run()
            self.left_s -= time.perf_counter() - started
            self.count += 1
            again["tries"] = best["tries"] + 1
            best = min(best, again, key=self.others_share)
            best["tries"] = again["tries"]
        return best


def warm_up(worker, route, args):
    url = f"http://127.0.0.1:{worker.port}{route.path}"
    run_wrk(url, args.warmup, args.connections, route.method, route.body_file, route.key)


def median_of_rounds(rounds):
    """The median of each number over the rounds, with the rounds kept."""
    summary = {}
    for name in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request", "cpu_s", "cpu_fine_s",
                 "requests", "seconds"):
        summary[name] = statistics.median(run[name] for run in rounds)
    summary["machine"] = {name: statistics.median(run["machine"][name] for run in rounds)
                          for name in rounds[0]["machine"]}
    summary["rounds"] = rounds
    return summary


def batch_run(meter, worker, body, count, args):
    """Sequential requests on one connection: at least `min_requests`, then until the
    time budget is spent (at most `max_requests`)."""
    connection = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=120)
    headers = {"content-type": "application/json", "authorization": f"Bearer {args.key}"}

    def send():
        started = time.perf_counter()
        connection.request("POST", "/v1/multipart/parts", body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"{worker.name}: parts answered {response.status}: {data[:300]!r}")
        return elapsed, data

    try:
        _, data = send()  # warm-up, and a check of the answer
        parts = json.loads(data)["parts"]
        if len(parts) != count or parts[-1]["partNumber"] != count:
            raise RuntimeError(f"{worker.name}: asked for {count} parts, got {len(parts)}")
        times = []
        with meter:
            started = time.perf_counter()
            while len(times) < args.batch_max_requests:
                spent = time.perf_counter() - started
                if len(times) >= args.batch_min_requests and spent >= args.batch_seconds:
                    break
                times.append(send()[0])
        cpu = meter.workerd_s
    finally:
        connection.close()
    return {
        "urls": count,
        "requests": len(times),
        "wall_ms_median": statistics.median(times) * 1000,
        "wall_ms_min": min(times) * 1000,
        "cpu_s": cpu,
        "cpu_fine_s": meter.workerd_fine_s,
        "cpu_ms_per_request": cpu / len(times) * 1000,
        "cpu_us_per_url": cpu / len(times) / count * 1e6,
        "response_bytes": len(data),
        "machine": meter.load,
    }


# ---------------------------------------------------------------------------------------
# Checking that the three Workers sign the same thing, and that the store accepts it

def put(url, headers, body):
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def signed_headers(url):
    from urllib.parse import parse_qs, urlsplit
    return parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0]


def check_workers(workers, token, key):
    """Each Worker's single-upload URL and two part URLs are PUT to the stub, which checks
    the signatures. Returns the signed headers of each Worker's single-upload URL."""
    signed = {}
    for worker in workers:
        status, data = request(worker.port, "POST", "/v1/uploads",
                               json.dumps(SINGLE_BODY).encode(), key)
        if status != 201:
            raise RuntimeError(f"{worker.name}: POST /v1/uploads answered {status}: {data!r}")
        answer = json.loads(data)
        expected = {"type", "bucket", "key", "method", "url", "headers", "expiresAt"}
        if set(answer) != expected:
            raise RuntimeError(f"{worker.name}: answer has fields {sorted(answer)}")
        signed[worker.name] = signed_headers(answer["url"])
        status, data = put(answer["url"], answer["headers"], b"x" * SINGLE_BODY["size"])
        if status != 200:
            raise RuntimeError(f"{worker.name}: the store refused its URL: {data!r}")
        status, data = put(answer["url"], {**answer["headers"], "content-type": "text/plain"},
                           b"x" * SINGLE_BODY["size"])
        if status != 403:
            raise RuntimeError(f"{worker.name}: its URL did not sign content-type")

        body = json.dumps({"token": token, "partNumbers": [1, 10_000]}).encode()
        status, data = request(worker.port, "POST", "/v1/multipart/parts", body, key)
        if status != 200:
            raise RuntimeError(f"{worker.name}: parts answered {status}: {data!r}")
        for part in json.loads(data)["parts"]:
            length = int(part["headers"]["content-length"])
            status, data = put(part["url"], part["headers"], b"p" * length)
            if status != 200:
                raise RuntimeError(f"{worker.name}: the store refused part "
                                   f"{part['partNumber']}: {data!r}")
    return signed


# ---------------------------------------------------------------------------------------
# The whole run

def file_sizes(paths):
    raw = sum(p.stat().st_size for p in paths)
    packed = sum(len(gzip.compress(p.read_bytes(), compresslevel=9)) for p in paths)
    return {"files": [str(p.relative_to(ROOT)) for p in paths], "raw": raw, "gzip": packed}


def machine_facts(workers):
    cpu_model = next((line.split(":", 1)[1].strip()
                      for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "Cargo.toml",
                            "Cargo.lock"], cwd=ROOT, capture_output=True, text=True).stdout
    workerd_version = subprocess.run([str(WORKERD), "--version"], capture_output=True,
                                     text=True).stdout.strip()
    wasm = ROOT / "build/index_bg.wasm"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": commit,
        "src_changed_since_commit": bool(dirty.strip()),
        "wasm_sha256": hashlib.sha256(wasm.read_bytes()).hexdigest()[:16],
        "wasm_built": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wasm.stat().st_mtime)),
        "workerd": workerd_version,
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "busy_processes_at_start": busy_processes(),
        "workers": [w.label for w in workers],
    }


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4,
                        help="seconds of each measured wrk run (default 4)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="wrk runs per Worker and route, interleaved (default 3)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="seconds of wrk before the first run of a route (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--batch-seconds", type=float, default=4.0,
                        help="time budget of each batch run (default 4)")
    parser.add_argument("--batch-min-requests", type=int, default=3)
    parser.add_argument("--batch-max-requests", type=int, default=500)
    parser.add_argument("--noisy", type=float, default=0.25,
                        help="share of a core used by other processes above which a run "
                        "is measured again (default 0.25)")
    parser.add_argument("--retry-budget", type=float, default=60,
                        help="seconds the whole benchmark may spend on such runs (default 60)")
    parser.add_argument("--cold-starts", type=int, default=5,
                        help="workerd starts per Worker for the cold-start time")
    parser.add_argument("--bundles", type=Path, default=RESULTS / "bundles",
                        help="folder with the esbuild bundles of the comparison Workers")
    return parser.parse_args()


def main():
    args = parse_args()
    args.bundles = args.bundles.resolve()
    started = time.perf_counter()
    RESULTS.mkdir(exist_ok=True)
    # workerd's output holds one audit line per request, hundreds of megabytes a run:
    # each run starts them afresh.
    for log_name in ("workerd.log", "workerd-cold.log"):
        (RESULTS / log_name).unlink(missing_ok=True)
    ensure_build()

    # Serve a copy, so that a rebuild during the run changes nothing.
    ours_dir = RESULTS / "edge-presigner"
    ours_dir.mkdir(exist_ok=True)
    for output in BUILD_OUTPUTS:
        shutil.copy2(output, ours_dir / output.name)
    workers = [
        Worker("edge-presigner", "edge-presigner (Rust, wasm)",
               [("index.js", "esModule", ours_dir / "index.js"),
                ("index_bg.wasm", "wasm", ours_dir / "index_bg.wasm")],
               [ours_dir / "index_bg.wasm", ours_dir / "index.js"]),
        Worker("aws4fetch", "aws4fetch (JS)",
               [("worker.js", "esModule", args.bundles / "aws4fetch.js")],
               [args.bundles / "aws4fetch.js"]),
        Worker("aws-sdk", "AWS SDK v3 presigner (JS)",
               [("worker.js", "esModule", args.bundles / "aws-sdk.js")],
               [args.bundles / "aws-sdk.js"]),
    ]
    for worker in workers:
        worker.port = free_port()

    results = {"machine": machine_facts(workers), "settings": {
        "duration_s": args.duration, "rounds": args.rounds, "warmup_s": args.warmup,
        "connections": args.connections,
        "batch_seconds": args.batch_seconds, "batch_min_requests": args.batch_min_requests,
        "cold_starts": args.cold_starts, "noisy": args.noisy,
        "retry_budget_s": args.retry_budget}}
    results["left_out_bindings"] = left_out_bindings()
    results["sizes"] = {w.name: file_sizes(w.shipped) for w in workers}
    results["sizes"]["edge-presigner-wasm"] = file_sizes([ours_dir / "index_bg.wasm"])

    store_port = free_port()
    settings = bench_settings(store_port)
    secrets = settings[3]
    bucket = next(iter(settings[2]["BUCKETS"].values()))
    args.key = secrets["API_KEY_DEMO"]
    store = subprocess.Popen(
        [sys.executable, str(BENCH / "s3stub.py"), str(store_port),
         secrets[f"{bucket['credentials']}_ACCESS_KEY_ID"],
         secrets[f"{bucket['credentials']}_SECRET_ACCESS_KEY"]],
        stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    workerd = None
    try:
        log("cold starts: workerd with one Worker, until its first 200")
        results["cold_start_s"] = {w.name: cold_start(w, settings, args.cold_starts)
                                   for w in workers}

        config = RESULTS / "workerd.capnp"
        config.write_text(workerd_config(workers, *settings))
        workerd = start_workerd(config, RESULTS / "workerd.log")
        for worker in workers:
            wait_for_health(worker.port, workerd)
        meter = Meter(workerd.pid, store.pid)
        retries = Retries(args.retry_budget, args.noisy)

        status, data = request(workers[0].port, "POST", "/v1/uploads", json.dumps({
            "profile": MULTIPART_PROFILE, "filename": "film.mp4", "contentType": "video/mp4",
            "size": MULTIPART_SIZE, "multipart": True}).encode(), args.key)
        if status != 201:
            raise RuntimeError(f"starting the multipart upload answered {status}: {data!r}")
        token = json.loads(data)["token"]

        log("checking that every Worker's URLs are accepted by the store")
        results["signed_headers"] = check_workers(workers, token, args.key)

        body_file = RESULTS / "single-upload.json"
        body_file.write_text(json.dumps(SINGLE_BODY))
        unknown_profile = RESULTS / "unknown-profile.json"
        unknown_profile.write_text(json.dumps({**SINGLE_BODY, "profile": "no-such-profile"}))
        routes = {
            "health": Route("/v1/health"),
            "single": Route("/v1/uploads", "POST", body_file, args.key, 201),
        }
        # The upload route stopped at two points, to see where its time goes.
        steps = {
            "unauthorized": Route("/v1/uploads", "POST", body_file, "not-a-key", 401),
            "unknown_profile": Route("/v1/uploads", "POST", unknown_profile, args.key, 404),
        }

        # Rounds interleave the Workers, so a burst of other work on the machine falls
        # on all of them rather than on one.
        results["load"] = {w.name: {} for w in workers}
        for route_name, route in routes.items():
            rounds = {w.name: [] for w in workers}
            for worker in workers:
                warm_up(worker, route, args)
            for i in range(args.rounds):
                for worker in workers:
                    log(f"{route_name}: {worker.name}, round {i + 1} of {args.rounds}, "
                        f"wrk -t1 -c{args.connections} -d{args.duration}s")
                    run = retries.measure(
                        lambda: load_run(meter, worker, route, args.duration, args))
                    rounds[worker.name].append(run)
            for worker in workers:
                results["load"][worker.name][route_name] = median_of_rounds(rounds[worker.name])
        for step_name, route in steps.items():
            for worker in workers:
                log(f"upload stopped at {step_name}: {worker.name}")
                warm_up(worker, route, args)
                run = retries.measure(
                    lambda: load_run(meter, worker, route, args.duration, args))
                results["load"][worker.name][step_name] = median_of_rounds([run])

        results["batches"] = {}
        for count in BATCH_SIZES:
            body = json.dumps({"token": token,
                               "partNumbers": list(range(1, count + 1))}).encode()
            for worker in workers:
                log(f"batch of {count} part URLs: {worker.name}")
                results["batches"].setdefault(worker.name, {})[str(count)] = retries.measure(
                    lambda: batch_run(meter, worker, body, count, args))
    finally:
        stop(workerd)
        stop(store)

    results["retries"] = retries.count
    results["elapsed_s"] = time.perf_counter() - started
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    import report
    markdown = report.markdown(results)
    (RESULTS / "RESULTS.md").write_text(markdown)
    report.chart(results, RESULTS / "chart.png")
    print(markdown)
    log(f"done in {results['elapsed_s']:.0f} s: bench/results/RESULTS.md, "
        f"bench/results/chart.png, bench/results/results.json")


if __name__ == "__main__":
    main()
