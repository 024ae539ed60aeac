"""A bounded load test of `nanosora serve` on loopback.

1. 200 concurrent creates: every answer must be 200 or 429 (queue full), and every accepted
   job must end completed or failed.
2. /health is polled every 0.1 s throughout: its latency under load (median, p95, max).
3. 1,000 more requests (creates, retrieves, lists, deletes, 20 at a time): the server's
   resident memory after the first 100 and after all of them (target: no growth beyond noise).

The server runs in its own process with the given model and few sampling steps (this
measures the service, not the model).

    python benchmarks/load.py [--model DIR] [--steps 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run(url: str, pid: int) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        health: list[float] = []
        stop = asyncio.Event()

        async def ping():
            while not stop.is_set():
                t = time.perf_counter()
                r = await c.get("/health")
                assert r.status_code == 200
                health.append(time.perf_counter() - t)
                await asyncio.sleep(0.1)

        pinger = asyncio.create_task(ping())
        body = {"prompt": "a red circle moves right", "seconds": "1", "size": "64x64"}
        answers = await asyncio.gather(*[c.post("/v1/videos", json=body) for _ in range(200)])
        codes: dict[int, int] = {}
        for r in answers:
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
        accepted = [r.json()["id"] for r in answers if r.status_code == 200]
        t0 = time.perf_counter()
        final: dict[str, int] = {}
        pending = set(accepted)
        while pending and time.perf_counter() - t0 < 600:
            for vid in list(pending):
                s = (await c.get(f"/v1/videos/{vid}")).json()["status"]
                if s in ("completed", "failed"):
                    final[s] = final.get(s, 0) + 1
                    pending.discard(vid)
            await asyncio.sleep(0.2)
        drain_s = time.perf_counter() - t0

        # 1,000 mixed requests, 20 at a time; memory after the first 100 and at the end
        sem = asyncio.Semaphore(20)
        mixed_codes: dict[int, int] = {}
        rss = {}

        async def one(i: int):
            async with sem:
                kind = i % 4
                if kind == 0:
                    r = await c.post("/v1/videos", json=body)
                elif kind == 1:
                    r = await c.get(f"/v1/videos/{accepted[i % len(accepted)]}")
                elif kind == 2:
                    r = await c.get("/v1/videos", params={"limit": 20})
                else:
                    r = await c.delete("/v1/videos/video_does_not_exist")
                mixed_codes[r.status_code] = mixed_codes.get(r.status_code, 0) + 1

        await asyncio.gather(*[one(i) for i in range(100)])
        rss["after_100"] = rss_mb(pid)
        await asyncio.gather(*[one(i) for i in range(100, 1000)])
        rss["after_1000"] = rss_mb(pid)
        stop.set()
        await pinger
    ms = sorted(h * 1000 for h in health)
    return {
        "creates": 200,
        "create_codes": codes,
        "accepted": len(accepted),
        "accepted_final": final,
        "accepted_unfinished": len(pending),
        "drain_s": round(drain_s, 1),
        "health_ms": {
            "n": len(ms),
            "median": round(statistics.median(ms), 1),
            "p95": round(ms[int(0.95 * (len(ms) - 1))], 1),
            "max": round(ms[-1], 1),
        },
        "mixed_requests": 1000,
        "mixed_codes": mixed_codes,
        "server_rss_mb": {k: round(v, 1) for k, v in rss.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--queue-limit", type=int, default=64)
    ap.add_argument("--json")
    args = ap.parse_args()
    port = free_port()
    data = tempfile.mkdtemp(prefix="nanosora-load-")
    cmd = [
        sys.executable,
        "-m",
        "nanosora",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        data,
        "--steps",
        str(args.steps),
        "--queue-limit",
        str(args.queue_limit),
    ]
    if args.model:
        cmd += ["--model", args.model]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        r = asyncio.run(run(url, server.pid))
    finally:
        server.terminate()
        server.wait(10)
    print(f"200 concurrent creates: {r['create_codes']} (200 accepted, 429 queue full)")
    print(
        f"accepted jobs: {r['accepted']} -> {r['accepted_final']}, unfinished {r['accepted_unfinished']}, "
        f"drained in {r['drain_s']} s"
    )
    h = r["health_ms"]
    print(
        f"/health under load: median {h['median']} ms, p95 {h['p95']} ms, max {h['max']} ms ({h['n']} pings)"
    )
    print(f"1,000 mixed requests: {r['mixed_codes']}; server RSS {r['server_rss_mb']}")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
