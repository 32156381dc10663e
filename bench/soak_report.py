"""The soak test's report: a Markdown page and a PNG chart from soak.json.

Run on its own to redraw both from a saved run:
    bench/.venv/bin/python bench/soak_report.py bench/results/soak.json
"""

import json
import sys
from pathlib import Path

from report import table

# Names of the request kinds in soak_client.py, in the order the report lists them.
KINDS = {
    "single": "`POST /v1/uploads`, single PUT",
    "multipart_create": "`POST /v1/uploads`, multipart (CreateMultipartUpload)",
    "parts_sign": "`POST /v1/multipart/parts`, 1 part",
    "parts_sign_le1": "`POST /v1/multipart/parts`, batch of 1",
    "parts_sign_le20": "`POST /v1/multipart/parts`, batch of 2–20",
    "parts_sign_le100": "`POST /v1/multipart/parts`, batch of 21–100",
    "parts_sign_le1000": "`POST /v1/multipart/parts`, batch of 101–1,000",
    "parts_sign_le10000": "`POST /v1/multipart/parts`, batch of 1,001–10,000",
    "parts_list": "`GET /v1/multipart/parts` (ListParts)",
    "complete": "`POST /v1/multipart/complete`",
    "complete_again": "`POST /v1/multipart/complete` again (HeadObject)",
    "download": "`POST /v1/downloads`",
    "abort": "`POST /v1/multipart/abort`",
    "parts_after_abort": "part URLs after the abort (409 expected)",
    "complete_bad_etag": "complete with ETags the store never gave (400 expected)",
}


def kind_name(kind):
    if kind in KINDS:
        return KINDS[kind]
    if kind.startswith("bad_"):
        return f"bad request: {kind[4:].replace('_', ' ')}"
    return kind


def ms(value):
    return "–" if value is None else f"{value:,.1f}"


def markdown(r):
    m, s, t = r["machine"], r["settings"], r["totals"]
    classes = t["statuses"]
    out = ["# edge-presigner: soak test", ""]
    out.append(
        f"Run of {m['date']} on commit `{m['commit']}`"
        + (" (with uncommitted changes in src/)" if m["src_changed_since_commit"] else "")
        + f", wasm `{m['wasm_sha256']}` built {m['wasm_built']}; {m['workerd']}; "
        f"{m['cpu']}, {m['cores']} cores, load generator on the same machine. "
        f"{s['clients']} clients for {s['seconds']} s, one keep-alive connection each, "
        f"{s['processes']} load-generating process(es); readings every {s['interval_s']:g} s. "
        "Made by `bash scripts/soak`; bench/README.md says what each number means.")
    verdict = ("**Passed**: no 5xx, every answer as expected, every presigned URL sent to "
               "the store accepted." if not r["failures"] else
               "**Failed**: " + "; ".join(r["failures"]) + ".")
    out += ["", verdict, "", "## Totals", ""]
    checks = t["checks"]
    slope = t["workerd_rss_mib_per_min_second_half"]
    rows = [
        ("requests answered", f"{t['requests']:,}"),
        ("requests/s (mean over the measured intervals)", f"{t['rps']:,.0f}"),
        ("latency p50 / p99 / p99.9 / max", f"{ms(t['p50_ms'])} / {ms(t['p99_ms'])} / "
         f"{ms(t['p999_ms'])} / {ms(t['max_ms'])} ms"),
        ("answers 2xx / 4xx / 5xx / no answer",
         " / ".join(f"{classes.get(c, 0):,}" for c in ("2xx", "4xx", "5xx", "error"))),
        ("answers not as expected", f"{sum(u['count'] for u in t['unexpected']):,}"),
        ("presigned PUTs accepted / refused by the store",
         f"{checks.get('put_accepted', 0):,} / {checks.get('put_refused', 0):,}"),
        ("PUTs with another content type refused / accepted",
         f"{checks.get('tamper_refused', 0):,} / {checks.get('tamper_accepted', 0):,}"),
        ("workerd RSS idle → start of load → end (peak)",
         f"{r['workerd_rss_mib_idle']:.1f} → {t['workerd_rss_mib_start']:.1f} → "
         f"{t['workerd_rss_mib_end']:.1f} MiB ({r['workerd_rss_mib_peak']:.1f} MiB)"),
        ("workerd RSS trend over the second half",
         "–" if slope is None else f"{slope:+.2f} MiB/min"),
        ("workerd log", f"{t['workerd_log_bytes'] / 1e6:,.1f} MB"),
    ]
    out.append(table(["", ""], rows))

    if t["unexpected"]:
        out += ["", "## Unexpected answers", ""]
        out.append(table(["request", "expected", "got", "count"],
                         [(kind_name(u["kind"]), u["expected"], u["got"], u["count"])
                          for u in t["unexpected"]]))
        out += ["", "The first answer of each kind:", ""]
        out += [f"- {kind_name(x['kind'])}: {x['got']} `{x['body'][:200]}`"
                for x in t["unexpected_samples"]]

    out += ["", "## Intervals", "",
            "Requests answered by the Worker in each interval (by the time the answer "
            "arrived), their latency, and the processes' readings at its end. CPU is a share "
            "of one core; the load generator's includes the soak script's own; \"others\" is "
            "what every other process used. Intervals marked *drain* come after the deadline, while "
            "clients finish the flow they are in.", ""]
    rows = []
    for i in r["intervals"]:
        st = i["statuses"]
        rows.append((f"{i['end_s']:.0f}" + (" drain" if i["drain"] else ""),
                     f"{i['rps']:,.0f}", ms(i["p50_ms"]), ms(i["p99_ms"]), ms(i["max_ms"]),
                     st.get("2xx", 0), st.get("4xx", 0), st.get("5xx", 0), st.get("error", 0),
                     i["unexpected"], i["puts_accepted"], f"{i['workerd_rss_mib']:.1f}",
                     f"{i['workerd_cpu'] * 100:.0f} %", f"{i['stub_cpu'] * 100:.0f} %",
                     f"{i['generators_cpu'] * 100:.0f} %", f"{i['others_cpu'] * 100:.0f} %"))
    out.append(table(["end s", "req/s", "p50 ms", "p99 ms", "max ms", "2xx", "4xx", "5xx",
                      "no answer", "unexpected", "PUTs checked", "workerd RSS MiB",
                      "workerd CPU", "stub CPU", "load gen. CPU", "others CPU"], rows))

    out += ["", "## By request", "",
            "Latency is the client's, from writing the request to reading the whole answer. "
            "Requests that reach the store (multipart create, part URLs, lists, complete, "
            "abort) include the S3 stub's time.", ""]
    order = list(KINDS) + sorted(k for k in r["kinds"] if k not in KINDS)
    rows = []
    for kind in order:
        k = r["kinds"].get(kind)
        if k:
            statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(k["statuses"].items()))
            rows.append((kind_name(kind), f"{k['requests']:,}", ms(k["p50_ms"]),
                         ms(k["p99_ms"]), ms(k["max_ms"]), statuses))
    out.append(table(["request", "count", "p50 ms", "p99 ms", "max ms", "answers"], rows))

    stub = r.get("stub", {}).get("stats", {})
    out += ["", "## The store", "",
            "What the S3 stub served. It checks the SigV4 signature of every request: the "
            "Worker's own calls (signed in the Authorization header) and the presigned PUTs "
            "the clients sent.", ""]
    out.append(table(["call", "count"], [(name, f"{n:,}") for name, n in sorted(stub.items())]))
    left = r.get("stub", {}).get("open_uploads")
    if left is not None:
        out += ["", f"Multipart uploads still open in the store at the end: {left:,} (every "
                "flow completes or aborts its upload; any left are flows cut short)."]

    rows_noisy = [i for i in r["intervals"] if i["others_cpu"] > 0.25]
    generator_peak = max((i["generators_cpu"] / s["processes"] for i in r["intervals"]),
                         default=0)
    busy = ", ".join(r.get("busy_processes_before_load", [])) or "none"
    out += ["", "## Conditions", "",
            f"- Load average at start: {' '.join(m['loadavg_at_start'])}. Processes above "
            f"5 % of a core in the second before the load: {busy}. Intervals in which other "
            f"processes used more than 25 % of a core: {len(rows_noisy)} of "
            f"{len(r['intervals'])}.",
            f"- Each load-generating process used at most {generator_peak * 100:.0f} % of a "
            "core in an interval" + (" (near a full core: it may have limited the rate; try "
                                     "`--processes 2`)." if generator_peak > 0.85 else
                                     ", so it did not limit the rate."),
            f"- Connections dropped by a full listen backlog during the load, on the whole "
            f"machine: {r.get('listen_overflows', 0):,} (each waits a second to try again).",
            f"- Bindings of wrangler.toml that workerd was not given: "
            f"{', '.join(r.get('left_out_bindings', [])) or 'none'}. As in the benchmark, "
            "without RATE_LIMITER the Worker skips its per-caller limit of 600 requests a "
            "minute, which would otherwise answer most of this load with 429.",
            "- Flows picked by weight: " + ", ".join(f"{k} {v}" for k, v in s["flows"].items())
            + f"; {s['put_share'] * 100:g} % of single uploads are small and sent to the store.",
            ""]
    return "\n".join(out)


def chart(r, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The drain after the deadline is in the table, not here: its few requests say little.
    rows = [i for i in r["intervals"] if not i["drain"]]
    xs = [i["end_s"] for i in rows]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    series = [
        (axes[0], xs, [i["rps"] for i in rows], "requests/s", "C0"),
        (axes[1], xs, [i["p99_ms"] or 0 for i in rows], "latency, ms", "C3"),
        (axes[2], [0] + xs, [r["totals"]["workerd_rss_mib_start"]]
         + [i["workerd_rss_mib"] for i in rows], "workerd RSS, MiB", "C2"),
    ]
    for ax, x, ys, label, color in series:
        ax.plot(x, ys, marker="o", markersize=3, color=color)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0, top=max(ys + [1]) * 1.15)
        ax.grid(alpha=0.3)
    axes[1].plot(xs, [i["p50_ms"] or 0 for i in rows], color="C1", linestyle="--")
    axes[1].legend(["p99", "p50"], loc="upper right")
    axes[2].set_xlabel("seconds since the load began")
    s = r["settings"]
    fig.suptitle(f"edge-presigner soak: {s['clients']} clients, {s['seconds']} s, "
                 f"{'passed' if not r['failures'] else 'FAILED'}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    source = Path(sys.argv[1] if len(sys.argv) > 1 else
                  Path(__file__).resolve().parent / "results/soak.json")
    results = json.loads(source.read_text())
    (source.parent / "soak.md").write_text(markdown(results))
    chart(results, source.parent / "soak.png")
    print(f"wrote {source.parent / 'soak.md'} and {source.parent / 'soak.png'}")


if __name__ == "__main__":
    main()
