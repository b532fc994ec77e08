#!/usr/bin/env python3
"""summarize.py RUNS.jsonl: the table of bench/compare.sh.

Reads the JSON lines of `sevo bench --json`, `bench_torch.py --json` and `sevo bench
--sgemm_only --json` (each labelled with its size and BLAS environment by compare.sh) and
prints, per size, the medians of the repetitions and the ratios sevo/PyTorch, then
sevo's training GFLOP/s as a fraction of the sgemm peak (the best of its measurements)
and its speed-up from 1 thread; and the decode bound of this machine's memory (the best
read rate of `sevo bench --memory_only` over the bytes a decode step reads) with what
each program reaches of it.
Standard library only.
"""

import json
import os
import platform
import statistics
import sys


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    sizes = []
    for r in runs:
        if "size" in r and r["size"] not in sizes:
            sizes.append(r["size"])
    envs = sorted({r["blas_env"] for r in runs if "blas_env" in r}, key=lambda e: e != "as set")
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    torch_ver = next((r["torch"] for r in runs if r.get("framework") == "pytorch"), "?")
    threads = next((r["threads"] for r in runs if r.get("framework") == "pytorch"), "?")
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores; {threads} threads each; PyTorch {torch_ver} eager.")
    print("Medians of the repetitions; ratio = sevo / PyTorch (above 1 is sevo faster; for memory, below 1 is "
          "sevo smaller).\n")
    mem = [r for r in runs if r.get("framework") == "memory"]
    read = max((r["read_gbps"] for r in mem), default=0.0)
    l3 = max((r.get("l3_bytes", 0) for r in mem), default=0)
    for env in envs:
        if len(envs) > 1:
            print(f"### OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE {env} (for sevo; PyTorch as set)\n")
        peak = {}
        for r in runs:
            if r.get("framework") == "sgemm" and r["blas_env"] == env:
                peak[r["threads"]] = max(peak.get(r["threads"], 0.0), r["sgemm_gflops"])
        print("| size | params | train tok/s sevo | PyTorch | ratio | prefill tok/s sevo | PyTorch | ratio "
              "| decode tok/s sevo | PyTorch | ratio | peak MiB sevo | PyTorch | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        extra = []
        for size in sizes:
            s = [r for r in runs if r.get("size") == size and r.get("framework") == "sevo" and r["blas_env"] == env
                 and not r.get("one_thread")]
            t = [r for r in runs if r.get("size") == size and r.get("framework") == "pytorch"]
            one = [r for r in runs if r.get("size") == size and r.get("one_thread") and r["blas_env"] == env]
            if not s or not t:
                continue
            row = [size, f"{s[0]['params'] / 1e6:.1f}M"]
            for k in ("train_tokens_per_s", "prefill_tokens_per_s", "decode_tokens_per_s", "peak_rss_mib"):
                a, b = med(s, k), med(t, k)
                row += [f"{a:.0f}", f"{b:.0f}", f"{a / b:.2f}x"]
            print("| " + " | ".join(row) + " |")
            gf, n = med(s, "train_gflops"), s[0]["threads"]
            note = f"{size}: sevo training {gf:.1f} GFLOP/s"
            if peak.get(n):
                note += f" = {100 * gf / peak[n]:.0f}% of the sgemm peak ({peak[n]:.0f} GFLOP/s on {n} threads)"
            if one:
                note += (f"; 1 -> {n} threads: train {med(s, 'train_tokens_per_s') / med(one, 'train_tokens_per_s'):.2f}x, "
                         f"prefill {med(s, 'prefill_tokens_per_s') / med(one, 'prefill_tokens_per_s'):.2f}x, "
                         f"decode {med(s, 'decode_tokens_per_s') / med(one, 'decode_tokens_per_s'):.2f}x")
            extra.append(note)
            if read and not l3:
                extra.append(f"{size}: the L3 cache size is unknown here, so whether decode is bound by memory is not said")
            elif read and s[0].get("decode_bytes_per_token", 0) > l3:
                # the weights do not fit in the last-level cache: every token reads them from memory
                mb = s[0]["decode_bytes_per_token"] / 1e6
                bound = read * 1e3 / mb
                ds, dt = med(s, "decode_tokens_per_s"), med(t, "decode_tokens_per_s")
                extra.append(f"{size}: decode reads {mb:.1f} MB per token; at the measured {read:.1f} GB/s memory "
                             f"read rate a program decodes at most about {bound:.0f} tokens/s here: sevo reaches "
                             f"{100 * ds / bound:.0f}% of it, PyTorch {100 * dt / bound:.0f}%; 2x PyTorch "
                             f"({2 * dt:.0f} tokens/s) would read {2 * dt * mb / 1e3:.1f} GB/s")
            elif read and s[0].get("decode_bytes_per_token"):
                extra.append(f"{size}: decode reads {s[0]['decode_bytes_per_token'] / 1e6:.1f} MB per token, which "
                             f"fits in the {l3 / 2**20:.1f} MiB L3 cache: not bound by memory")
        print()
        for note in extra:
            print("- " + note)
        print()


if __name__ == "__main__":
    main()
