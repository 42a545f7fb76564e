#!/usr/bin/env python3
"""Summarises the rebalance-u*.yaml sweeps (results/rebalance/) as a markdown table: TP90 per
strategy, connection count and utilisation (median of the repetitions, min-max), against the
M/M/c and c x M/M/1 TP90 bounds (the formulas of Sources/Simulator/QueueingBounds.swift).

usage: scripts/rebalance-summary.py COST_US RUN_DIR... > results/rebalance/summary.md
COST_US: the per-request cost behind the bounds (workers / measured capacity)."""
import json, math, os, statistics, sys

WORKERS = 4


def erlang_c(c, rho):
    a = rho * c
    term, total = 1.0, 1.0
    for k in range(1, c):
        term *= a / k
        total += term
    top = term * a / c / (1 - rho)
    return top / (total + top)


def mm1_q(q, rho, cost):
    return -math.log(1 - q) * cost / (1 - rho)


def mmc_q(q, c, rho, cost):
    mu = 1 / cost
    wait_rate = c * mu * (1 - rho)
    p_wait = erlang_c(c, rho)

    def cdf(t):
        service = 1 - math.exp(-mu * t)
        if abs(wait_rate - mu) < 1e-12 * mu:
            both = 1 - math.exp(-mu * t) * (1 + mu * t)
        else:
            both = 1 - (wait_rate * math.exp(-mu * t) - mu * math.exp(-wait_rate * t)) / (wait_rate - mu)
        return (1 - p_wait) * service + p_wait * both
    low, high = 0.0, cost
    while cdf(high) < q:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < q else (low, mid)
    return (low + high) / 2


def p90(hist):
    return next(p["Value"] for p in hist["Percentiles"] if p["Percentile"] == 90)


def main():
    cost = float(sys.argv[1]) * 1e-6
    rows = {}
    for run in sys.argv[2:]:
        for name in sorted(os.listdir(run)):
            if not name.endswith(".json") or name == "manifest.json":
                continue
            d = json.load(open(os.path.join(run, name)))
            qps = float(d["RequestedQPS"])
            rho = qps * cost / WORKERS
            key = (round(rho, 2), d["axes"]["connections"], d["variant"])
            active = [w["active"] for w in d.get("workers") or []]
            rows.setdefault(key, []).append((p90(d["DurationHistogram"]), d["ActualQPS"], max(active) if active else None,
                                             d["cpu"]["systemMicrosPerRequest"], qps))
    print(f"Cost behind the bounds: {cost * 1e6:.1f} us per request, {WORKERS} workers.\n")
    print("| u | conns | strategy | req/s (median) | TP90 ms median (min-max) | / M/M/c | / c x M/M/1 | ratio to reuseport | busiest worker's connections | server CPU us/req |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    order = ["reuseport", "reuseport-rebalance", "least-loaded"]  # other variants (e.g. an epoll peer) after these
    for key in sorted(rows, key=lambda k: (k[0], k[1], order.index(k[2]) if k[2] in order else len(order), k[2])):
        rho, conns, variant = key
        r = rows[key]
        tp = [x[0] for x in r]
        med = statistics.median(tp)
        mmc = mmc_q(0.9, WORKERS, rho, cost)
        mm1 = mm1_q(0.9, rho, cost)
        base = rows.get((rho, conns, "reuseport"))
        ratio = "-"
        if base and variant != "reuseport":
            pairs = [a[0] / b[0] for a, b in zip(r, base)]
            ratio = f"{statistics.median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f})"
        busiest = "/".join(str(x[2]) for x in r)
        print(f"| {rho:.1f} | {conns} | {variant} | {statistics.median(x[1] for x in r):.0f} | {med * 1e3:.3f} ({min(tp) * 1e3:.3f}-{max(tp) * 1e3:.3f}) "
              f"| {med / mmc:.2f} | {med / mm1:.2f} | {ratio} | {busiest} | {statistics.median(x[3] for x in r):.1f} |")
    print()
    for rho in sorted({k[0] for k in rows}):
        print(f"u = {rho:.1f}: TP90 bounds M/M/c {mmc_q(0.9, WORKERS, rho, cost) * 1e3:.3f} ms, c x M/M/1 {mm1_q(0.9, rho, cost) * 1e3:.3f} ms")


main()
