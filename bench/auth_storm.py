#!/usr/bin/env python3
"""Auth storm against a running usergraph: what it costs in memory and how
fast the surplus is told to come back.

Usage: auth_storm.py BASE_URL PID OUT_MD

Phases (bounded, loopback only):
  1. 4 accounts registered one by one;
  2. 64 concurrent registrations;
  3. 200 logins with 32 in flight;
while a prober sends GET /health and an authenticated `me` every 20 ms.
Reports the server's peak RSS (VmHWM from /proc/PID/status), how many auth
requests were shed (RATE_LIMITED) and the latency of those answers, and the
probes' latencies. Standard library only.
"""

import concurrent.futures
import json
import statistics
import sys
import threading
import time
import urllib.request

PASSWORD = "correct horse battery staple"


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def post(base, query, token=None):
    body = json.dumps({"query": query}).encode()
    req = urllib.request.Request(f"{base}/graphql", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as res:
        answer = json.loads(res.read())
    return answer, time.perf_counter() - started


def register(base, i):
    return post(
        base,
        'mutation { register(input: {email: "storm%d@example.com", password: "%s"}) '
        "{ accessToken } }" % (i, PASSWORD),
    )


def login(base, i):
    return post(
        base,
        'mutation { login(input: {email: "storm%d@example.com", password: "%s"}) '
        "{ accessToken } }" % (i % 4, PASSWORD),
    )


def classify(results, op, tally):
    for answer, seconds in results:
        if answer.get("data") and answer["data"].get(op):
            tally["ok"].append(seconds)
            continue
        code = answer["errors"][0]["extensions"]["code"]
        tally.setdefault(code, []).append(seconds)


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def ms(values, p):
    return f"{pct(values, p) * 1000:.1f}"


def main():
    base, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    idle_kib = status_kib(pid, "VmRSS:")
    token = register(base, 0)[0]["data"]["register"]["accessToken"]
    for i in range(1, 4):
        register(base, i)

    probes = {"health": [], "me": []}
    stop = threading.Event()

    def prober():
        while not stop.is_set():
            started = time.perf_counter()
            with urllib.request.urlopen(f"{base}/health", timeout=10) as res:
                assert res.status == 200
            probes["health"].append(time.perf_counter() - started)
            answer, seconds = post(base, "{ me { email } }", token)
            assert answer["data"]["me"]["email"] == "storm0@example.com", answer
            probes["me"].append(seconds)
            time.sleep(0.02)

    probe = threading.Thread(target=prober)
    probe.start()
    tally = {"ok": []}
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        classify(list(pool.map(lambda i: register(base, i), range(4, 68))), "register", tally)
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        classify(list(pool.map(lambda i: login(base, i), range(200))), "login", tally)
    elapsed = time.perf_counter() - started
    stop.set()
    probe.join()
    peak_kib = status_kib(pid, "VmHWM:")
    anon_kib = status_kib(pid, "RssAnon:")
    shed = tally.get("RATE_LIMITED", [])
    others = {k: len(v) for k, v in tally.items() if k not in ("ok", "RATE_LIMITED")}

    lines = [
        "| measure | value |",
        "|---|---|",
        f"| requests (64 registrations, then 200 logins with 32 in flight) | {len(tally['ok']) + len(shed) + sum(others.values())} in {elapsed:.2f} s |",
        f"| succeeded | {len(tally['ok'])} (p50 {ms(tally['ok'], 50)} ms, p99 {ms(tally['ok'], 99)} ms) |",
        f"| shed with RATE_LIMITED | {len(shed)} (p50 {ms(shed, 50)} ms, p99 {ms(shed, 99)} ms, max {ms(shed, 100)} ms) |",
        f"| other answers | {others or 'none'} |",
        f"| /health during the storm | {len(probes['health'])} probes, p50 {ms(probes['health'], 50)} ms, p99 {ms(probes['health'], 99)} ms |",
        f"| `me` during the storm | {len(probes['me'])} probes, p50 {ms(probes['me'], 50)} ms, p99 {ms(probes['me'], 99)} ms |",
        f"| RSS when idle (before the storm) | {idle_kib / 1024:.1f} MiB |",
        f"| peak RSS (VmHWM) | {peak_kib / 1024:.1f} MiB |",
        f"| anonymous RSS after | {anon_kib / 1024:.1f} MiB |",
    ]
    with open(out, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    if peak_kib >= 64 * 1024:
        print("peak RSS over 64 MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
