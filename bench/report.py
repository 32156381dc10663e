"""The benchmark's report: a Markdown table and a PNG chart from results.json.

Run on its own to redraw both from a saved run:
    bench/.venv/bin/python bench/report.py bench/results/results.json
"""

import json
import sys
from pathlib import Path

OURS = "edge-presigner"
AWS4FETCH = "aws4fetch"
SDK = "aws-sdk"
NAMES = {OURS: "edge-presigner (Rust/wasm)", AWS4FETCH: "aws4fetch (JS)",
         SDK: "AWS SDK v3 presigner (JS)"}
WASM_GZIP_TARGET = 200_000  # bytes; 1 KB = 1,000 bytes here
NOISY = 0.25  # the default of run.py --noisy


def targets(r):
    """The project's targets: (what, measured, ratio text, met, runs it rests on)."""
    load, batches = r["load"], r["batches"]

    def work(name):
        cpu = load[name]
        return cpu["single"]["cpu_us_per_request"] - cpu["health"]["cpu_us_per_request"]

    rows = []
    for other in (AWS4FETCH, SDK):
        ratio = load[OURS]["single"]["rps"] / load[other]["single"]["rps"]
        rows.append((f"single-upload requests/s ahead of {NAMES[other]}",
                     f"{load[OURS]['single']['rps']:,.0f} vs "
                     f"{load[other]['single']['rps']:,.0f} /s",
                     f"{ratio:.2f}× (target > 1)", ratio > 1,
                     [load[OURS]["single"], load[other]["single"]]))
    ratio = work(OURS) / work(AWS4FETCH)
    rows.append(("signing work (upload CPU − no-op CPU) at most half of aws4fetch's",
                 f"{work(OURS):,.0f} vs {work(AWS4FETCH):,.0f} µs",
                 f"{ratio:.2f}× (target ≤ 0.50)", ratio <= 0.5,
                 [load[n][k] for n in (OURS, AWS4FETCH) for k in ("single", "health")]))
    ours_url = batches[OURS]["10000"]["cpu_us_per_url"]
    theirs_url = batches[AWS4FETCH]["10000"]["cpu_us_per_url"]
    ratio = theirs_url / ours_url
    rows.append(("per part URL at least 5× cheaper than aws4fetch (CPU, batch of 10,000)",
                 f"{ours_url:.2f} vs {theirs_url:.2f} µs/URL",
                 f"{ratio:.1f}× cheaper (target ≥ 5)", ratio >= 5,
                 [batches[OURS]["10000"], batches[AWS4FETCH]["10000"]]))
    for count, limit in (("10000", 100), ("1000", 10)):
        cpu = batches[OURS][count]["cpu_ms_per_request"]
        rows.append((f"{int(count):,} part URLs under {limit} ms CPU",
                     f"{cpu:.1f} ms", f"{cpu / limit:.2f}× the limit (target < 1)", cpu < limit,
                     [batches[OURS][count]]))
    gz = r["sizes"]["edge-presigner-wasm"]["gzip"]
    rows.append(("release wasm under 200 KB gzip", f"{gz / 1000:.1f} KB",
                 f"{gz / WASM_GZIP_TARGET:.2f}× the limit (target < 1)", gz < WASM_GZIP_TARGET,
                 []))
    return rows


def share(run):
    return run["machine"]["other_processes_s"] / run["machine"]["wall_s"]


def others(run, threshold):
    """How much of a core other people's processes used during a run, as text."""
    return f"{share(run) * 100:.0f} %" + (" ⚠" if share(run) > threshold else "")


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(r):
    m, s = r["machine"], r["settings"]
    workers = list(r["load"])
    noisy = s.get("noisy", NOISY)
    out = ["# edge-presigner: signing speed against two JavaScript Workers", ""]
    out.append(
        f"Run of {m['date']} on commit `{m['commit']}`"
        + (" (with uncommitted changes in src/)" if m["src_changed_since_commit"] else "")
        + f", wasm `{m['wasm_sha256']}` built {m['wasm_built']}; {m['workerd']}; "
        f"{m['cpu']}, {m['cores']} cores, load generator on the same machine. "
        f"The whole run took {r['elapsed_s']:.0f} s. Made by `bash scripts/bench`; "
        "bench/README.md says what each number means.")
    out += ["", "## Targets", ""]
    rows, marked = [], False
    for what, got, ratio, ok, runs in targets(r):
        met = "yes" if ok else "**no**"
        if any(share(run) > noisy for run in runs):
            met += " ⚠"
            marked = True
        rows.append((what, got, ratio, met))
    out.append(table(["target", "measured", "ratio", "met"], rows))
    if marked:
        out += ["", "⚠: it rests on a run during which other processes used more than "
                f"{noisy * 100:.0f} % of a core (see Conditions)."]

    out += ["", "## One presigned PUT: `POST /v1/uploads`",
            "", f"Median of {s['rounds']} runs of `wrk -t1 -c{s['connections']} "
            f"-d{s['duration_s']}s` per Worker, the Workers taking turns, after "
            f"{s['warmup_s']} s of warm-up. CPU is workerd's, per request; the signing work "
            "is the upload's CPU minus the no-op route's.", ""]
    rows = []
    for w in workers:
        up, noop = r["load"][w]["single"], r["load"][w]["health"]
        rows.append((NAMES[w], f"{up['rps']:,.0f}", f"{up['p50_ms']:.2f}", f"{up['p99_ms']:.2f}",
                     f"{up['cpu_us_per_request']:,.0f}", f"{noop['cpu_us_per_request']:,.0f}",
                     f"{up['cpu_us_per_request'] - noop['cpu_us_per_request']:,.0f}",
                     others(up, noisy)))
    out.append(table(["Worker", "requests/s", "p50 ms", "p99 ms", "CPU µs/request",
                      "no-op CPU µs/request", "signing work µs/request", "others' CPU"], rows))

    out += ["", "## The no-op route: `GET /v1/health`", ""]
    rows = []
    for w in workers:
        noop = r["load"][w]["health"]
        rows.append((NAMES[w], f"{noop['rps']:,.0f}", f"{noop['p50_ms']:.2f}",
                     f"{noop['p99_ms']:.2f}", f"{noop['cpu_us_per_request']:,.0f}",
                     others(noop, noisy)))
    out.append(table(["Worker", "requests/s", "p50 ms", "p99 ms", "CPU µs/request",
                      "others' CPU"], rows))

    out += ["", "## Where the upload's time goes", "",
            "workerd CPU µs per request of `POST /v1/uploads` stopped at three points, each "
            f"measured on its own (one `wrk -d{s['duration_s']}s` run; the no-op and the full "
            "upload are the medians above): refused at authentication (a wrong API key, "
            "401), refused after reading and parsing the body (an unknown profile, 404), and "
            "done (201). The differences are what each step adds.", ""]
    rows = []
    for w in workers:
        cpu = {k: r["load"][w][k]["cpu_us_per_request"]
               for k in ("health", "unauthorized", "unknown_profile", "single")}
        rows.append((NAMES[w], f"{cpu['health']:,.0f}", f"{cpu['unauthorized']:,.0f}",
                     f"{cpu['unknown_profile']:,.0f}", f"{cpu['single']:,.0f}",
                     f"{cpu['unauthorized'] - cpu['health']:+,.0f}",
                     f"{cpu['unknown_profile'] - cpu['unauthorized']:+,.0f}",
                     f"{cpu['single'] - cpu['unknown_profile']:+,.0f}"))
    out.append(table(["Worker", "no-op", "401 at auth", "404 after body", "201 signed",
                      "routing to auth", "reading the body", "policy, key, signing, answer"],
                     rows))

    out += ["", "## Part URLs: `POST /v1/multipart/parts`", "",
            "One connection, one request at a time, for at least "
            f"{s['batch_min_requests']} requests and {s['batch_seconds']:g} s, after one "
            "warm-up request. Each request also makes one ListParts call to the S3 stub. "
            "Wall time is the client's, median; CPU is workerd's, mean.", ""]
    rows = []
    for count in ("100", "1000", "10000"):
        for w in workers:
            b = r["batches"][w][count]
            rows.append((NAMES[w], f"{int(count):,}", b["requests"],
                         f"{b['wall_ms_median']:,.1f}",
                         f"{b['wall_ms_median'] * 1000 / b['urls']:,.2f}",
                         f"{b['cpu_ms_per_request']:,.1f}", f"{b['cpu_us_per_url']:,.2f}",
                         f"{b['response_bytes'] / 1e6:,.2f}", others(b, noisy)))
    out.append(table(["Worker", "URLs", "requests", "wall ms/request", "wall µs/URL",
                      "CPU ms/request", "CPU µs/URL", "answer MB", "others' CPU"], rows))

    out += ["", "## Code shipped", "", "gzip -9. KB = 1,000 bytes.", ""]
    rows = []
    for w in workers:
        size = r["sizes"][w]
        rows.append((NAMES[w], ", ".join(Path(f).name for f in size["files"]),
                     f"{size['raw'] / 1000:,.1f} KB", f"{size['gzip'] / 1000:,.1f} KB"))
    wasm = r["sizes"]["edge-presigner-wasm"]
    rows.append(("edge-presigner, wasm alone", "index_bg.wasm", f"{wasm['raw'] / 1000:,.1f} KB",
                 f"{wasm['gzip'] / 1000:,.1f} KB"))
    out.append(table(["Worker", "files", "raw", "gzip"], rows))

    out += ["", "## Cold start", "",
            f"From starting `workerd serve` with that Worker alone to its first 200 on "
            f"`GET /v1/health`, {s['cold_starts']} starts (polling every 2 ms).", ""]
    rows = []
    for w in workers:
        times = sorted(r["cold_start_s"][w])
        median = times[len(times) // 2]
        spread = f"{times[0] * 1000:,.0f}–{times[-1] * 1000:,.0f}"
        rows.append((NAMES[w], f"{median * 1000:,.0f}", spread))
    out.append(table(["Worker", "median ms", "min–max ms"], rows))

    out += ["", "## The same upload is signed", "",
            "Each Worker's URLs were PUT to the S3 stub, which checks SigV4 signatures: "
            "the single-upload URL and parts 1 and 10,000 were accepted with the headers "
            "given, and the single-upload URL was refused with another content type. "
            "Headers signed into the single-upload URL:", ""]
    out.append(table(["Worker", "X-Amz-SignedHeaders"],
                     [(NAMES[w], f"`{r['signed_headers'][w]}`") for w in workers]))

    runs = [run for w in workers for summary in r["load"][w].values()
            for run in summary["rounds"]]
    runs += [run for w in workers for run in r["batches"][w].values()]
    shares = sorted(share(run) for run in runs)
    busy_workerd = sorted(run["machine"]["workerd_s"] / run["machine"]["wall_s"]
                          for w in workers for summary in r["load"][w].values()
                          for run in summary["rounds"])
    drift = max(abs(run["cpu_s"] - run["cpu_fine_s"]) / run["cpu_s"] for run in runs)
    busy = ", ".join(m["busy_processes_at_start"]) or "none"
    out += ["", "## Conditions", "",
            f"- Load average at start: {' '.join(m['loadavg_at_start'])}. Processes above "
            f"5 % of a core in the second before the run: {busy}.",
            "- \"others' CPU\" is the share of a core that processes other than workerd, "
            "wrk, the S3 stub and this script used during that run (from /proc/stat). "
            f"A run above {noisy * 100:.0f} % was measured again while the run's budget of "
            f"{s.get('retry_budget_s', 0):.0f} s lasted, and the quietest try kept "
            f"({r.get('retries', 0)} runs again this time); ⚠ marks those still above it. "
            "Their requests/s and latencies are less trustworthy than their CPU per request.",
            f"- Bindings of wrangler.toml that workerd was not given: "
            f"{', '.join(r.get('left_out_bindings', [])) or 'none'}. Without "
            "RATE_LIMITER the Worker skips its per-caller limit (600 a minute would refuse "
            "a load test); on Cloudflare that call adds a cost this run does not measure.",
            f"- During the measured runs, processes other than workerd, wrk, the S3 stub and "
            f"this script used {shares[0] * 100:.0f} % to {shares[-1] * 100:.0f} % of a core "
            f"(median {shares[len(shares) // 2] * 100:.0f} %). workerd itself used "
            f"{busy_workerd[0] * 100:.0f} % to {busy_workerd[-1] * 100:.0f} % of a core "
            "under wrk: its requests run on one thread, so requests/s is bounded by one core.",
            "- CPU time is utime + stime of the workerd process from /proc/<pid>/stat "
            "(10 ms ticks), over all its threads, so it includes workerd's HTTP handling "
            "and V8's garbage collector and compiler threads, not only the Worker's code. "
            "The scheduler's nanosecond count (/proc/<pid>/task/*/schedstat) agreed with it "
            f"within {drift * 100:.1f} % on every run.",
            ""]
    return "\n".join(out)


def chart(r, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workers = list(r["load"])
    colors = {OURS: "#d9622b", AWS4FETCH: "#3b7dd8", SDK: "#6a6a6a"}
    labels = [NAMES[w] for w in workers]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    fig.suptitle("edge-presigner vs JavaScript signers in workerd — commit "
                 f"{r['machine']['commit']}, {r['machine']['date']}", fontsize=13)

    def bars(ax, values, title, unit, fmt="{:,.0f}"):
        xs = range(len(workers))
        drawn = ax.bar(xs, values, color=[colors[w] for w in workers])
        ax.set_xticks(list(xs), labels, fontsize=9)
        ax.set_title(title, fontsize=11)
        ax.set_ylabel(unit)
        for bar, value in zip(drawn, values):
            ax.annotate(fmt.format(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=9)
        ax.margins(y=0.15)

    bars(axes[0][0], [r["load"][w]["single"]["rps"] for w in workers],
         "POST /v1/uploads: requests/s (higher is better)", "requests/s")

    ax = axes[0][1]
    width = 0.38
    noop = [r["load"][w]["health"]["cpu_us_per_request"] for w in workers]
    work = [r["load"][w]["single"]["cpu_us_per_request"] - n for w, n in zip(workers, noop)]
    xs = list(range(len(workers)))
    ax.bar(xs, noop, width * 2, color="#cfcfcf", label="no-op route (GET /v1/health)")
    drawn = ax.bar(xs, work, width * 2, bottom=noop, color=[colors[w] for w in workers],
                   label="signing work (upload − no-op), in the Worker's colour")
    for bar, base, value in zip(drawn, noop, work):
        ax.annotate(f"{base + value:,.0f} µs\n(work {value:,.0f})",
                    (bar.get_x() + bar.get_width() / 2, base + value),
                    ha="center", va="bottom", fontsize=9)
    ax.set_xticks(xs, labels, fontsize=9)
    ax.set_title("POST /v1/uploads: workerd CPU per request (lower is better)", fontsize=11)
    ax.set_ylabel("µs CPU / request")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(top=max(n + w for n, w in zip(noop, work)) * 1.45)

    ax = axes[1][0]
    counts = ["100", "1000", "10000"]
    width = 0.26
    for i, w in enumerate(workers):
        values = [r["batches"][w][c]["cpu_us_per_url"] for c in counts]
        drawn = ax.bar([j + (i - 1) * width for j in range(len(counts))], values, width,
                       color=colors[w], label=NAMES[w])
        for bar, value in zip(drawn, values):
            ax.annotate(f"{value:,.1f}", (bar.get_x() + bar.get_width() / 2, value),
                        ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    top = max(r["batches"][w][c]["cpu_us_per_url"] for w in workers for c in counts)
    ax.set_ylim(top=top * 8)
    ax.set_xticks(range(len(counts)), [f"{int(c):,} URLs" for c in counts])
    ax.set_title("POST /v1/multipart/parts: CPU per part URL (log scale, lower is better)",
                 fontsize=11)
    ax.set_ylabel("µs CPU / URL")
    ax.legend(fontsize=8, loc="upper left")

    sizes = [r["sizes"][w]["gzip"] / 1000 for w in workers]
    bars(axes[1][1], sizes, "Code shipped, gzip (lower is better)", "KB", "{:,.1f} KB")
    axes[1][1].axhline(WASM_GZIP_TARGET / 1000, color=colors[OURS], linestyle="--", linewidth=1)
    axes[1][1].annotate("target for our wasm: 200 KB", (0.5, WASM_GZIP_TARGET / 1000),
                        xycoords=("axes fraction", "data"), ha="center", va="bottom",
                        fontsize=9, color=colors[OURS])

    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    default = Path(__file__).parent / "results/results.json"
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    results = json.loads(source.read_text())
    (source.parent / "RESULTS.md").write_text(markdown(results))
    chart(results, source.parent / "chart.png")
    print(markdown(results))
