"""Load test of ``emolens serve`` on 127.0.0.1 against in-process ``Analyzer.analyze``, in one run.

python benchmarks/serve.py [--requests 10000] [--image PATH] [--model default] [--out benchmarks/results]

The requests are split 1:2:2 over concurrency 1, 4 and 16 (clients on persistent connections that
each send one request at a time; a 503 is counted and the client waits its ``Retry-After`` before the
next request, as a polite client does). The in-process baseline (a loop over ``Analyzer.analyze`` on
the same image with the same model and detector) is measured before the server starts and again
after it stops; the table uses their mean, and says when the two differ by more than 10 %. Resident
memory of the server process is read from /proc at start (after warm-up) and after each level.
"""

from __future__ import annotations

import argparse
import http.client
import shlex
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import REPO, machine, shared_path, thread_env_note, write_results
from tools.server import running_server

from emolens import Analyzer


def in_process(image: bytes, model: str, seconds: float) -> float:
    """Analyses per second of one Analyzer in this process (torch uses its default threads)."""
    analyzer = Analyzer("auto", model)
    for _ in range(5):
        analyzer.analyze(image)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        analyzer.analyze(image)
        done += 1
    return done / (time.perf_counter() - started)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(port: int, image: bytes, concurrency: int, total: int) -> dict[str, Any]:
    """``total`` requests from ``concurrency`` clients; latencies of the 200s, counts of every status."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    remaining = [total]

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": "image/jpeg"}
        while True:
            with lock:
                if remaining[0] == 0:
                    break
                remaining[0] -= 1
            started = time.perf_counter()
            try:
                connection.request("POST", "/v1/analyze", body=image, headers=headers)
                answer = connection.getresponse()
                answer.read()
                status = answer.status
                retry_after = answer.getheader("Retry-After")
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                status, retry_after = -1, None
            elapsed = time.perf_counter() - started
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(elapsed)
            if status == 503:
                time.sleep(float(retry_after or 1))
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    ok = statuses.get(200, 0)
    return {
        "concurrency": concurrency,
        "requests": total,
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "share_503": statuses.get(503, 0) / total,
        "other_errors": total - ok - statuses.get(503, 0),
        "requests_per_s": ok / wall,
        "p50_ms": statistics.median(latencies) * 1e3 if latencies else float("nan"),
        "p95_ms": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))] * 1e3 if latencies else 0,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="in all, split 1:2:2 over concurrency 1, 4, 16")
    parser.add_argument("--image", type=Path, default=None, help="default: ../shared/images/dlib-faces/2008_002470.jpg")
    parser.add_argument("--model", default="default")
    parser.add_argument("--baseline-seconds", type=float, default=20.0)
    parser.add_argument(
        "--server-args", default="", help="more `emolens serve` options, e.g. '--threads 2 --batch-window-ms 5'"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    path = args.image or shared_path("images", "dlib-faces", "2008_002470.jpg")
    image = path.read_bytes()
    shares = {1: 1, 4: 2, 16: 2}
    counts = {c: args.requests * s // sum(shares.values()) for c, s in shares.items()}

    before = in_process(image, args.model, args.baseline_seconds)
    rows = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        running_server(["--model", args.model, *shlex.split(args.server_args)], log=Path(scratch) / "log") as server,
    ):
        port = int(server.url.rsplit(":", 1)[1])
        memory = {"start": rss_mb(server.pid)}
        for concurrency, total in counts.items():
            rows.append(load(port, image, concurrency, total))
            memory[f"after_c{concurrency}"] = rss_mb(server.pid)
            print(rows[-1], memory, flush=True)
    after = in_process(image, args.model, args.baseline_seconds)
    baseline = (before + after) / 2
    unstable = abs(before - after) / baseline > 0.10
    for row in rows:
        row["ratio_to_in_process"] = row["requests_per_s"] / baseline

    faces = len(Analyzer("auto", args.model).analyze(image).faces)
    data = {
        "machine": machine(),
        "image": path.name,
        "faces_per_image": faces,
        "model": args.model,
        "server_args": args.server_args,
        "in_process_per_s": {"before": before, "after": after, "mean": baseline, "unstable": unstable},
        "rows": rows,
        "server_rss_mb": memory,
    }
    flag = " (unstable: the two baseline runs differ by more than 10 %)" if unstable else ""
    lines = [
        f"# emolens serve: load test on 127.0.0.1 ({path.name}, {faces} faces, model `{args.model}`)",
        "",
        f"Command: `python benchmarks/serve.py --requests {args.requests}"
        f"{f' --server-args {shlex.quote(args.server_args)}' if args.server_args else ''}`"
        f"{thread_env_note().replace(';', ',')}. Host: {machine()['cpu']}. Server: "
        f"{args.server_args or 'its defaults'} (see `emolens serve --help`); 8 requests in flight, then 503 + "
        "Retry-After.",
        "",
        f"In-process `Analyzer.analyze`: {baseline:.1f} images/s (before {before:.1f}, after {after:.1f}){flag}.",
        "",
        "| concurrency | requests | 200 | 503 share | other errors | requests/s | p50 ms | p95 ms | vs in-process |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['concurrency']} | {row['requests']:,} | {row['ok']:,} | {row['share_503']:.1%} | "
            f"{row['other_errors']} | {row['requests_per_s']:.1f} | {row['p50_ms']:.0f} | {row['p95_ms']:.0f} | "
            f"{row['ratio_to_in_process']:.0%} |"
        )
    lines += [
        "",
        "Server resident memory (MB): "
        + ", ".join(f"{key.replace('_', ' ')} {value:.0f}" for key, value in memory.items())
        + ".",
        "",
    ]
    write_results("serve", data, "\n".join(lines), args.out)


if __name__ == "__main__":
    main()
