"""One whole ``edgekit.load`` run's peak RSS, load time and speed, as a user gets it (no levers, no stages).

    python benchmarks/memory_whole.py BUNDLE [--threads 2] [--pp 128] [--tg 64]

Prints one JSON line. Run it with another checkout's interpreter (e.g. main's venv) to measure that
checkout's code on the same bundle: ``benchmarks/memory.py --whole PYTHON`` does, interleaved.
"""

import argparse
import json
import time

import numpy as np

import edgekit


def peak_and_rss() -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    return (int(fields["VmHWM"].split()[0]) * 1024, int(fields["VmRSS"].split()[0]) * 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pp", type=int, default=128)
    parser.add_argument("--tg", type=int, default=64)
    args = parser.parse_args()
    start = time.perf_counter()
    model = edgekit.load(args.bundle, threads=args.threads)
    load_s = time.perf_counter() - start
    state = model.new_state()
    prompt = np.random.default_rng(0).integers(0, 248_000, args.pp).tolist()
    start = time.perf_counter()
    token = int(np.argmax(model.prefill(state, prompt)))
    prefill_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.tg):
        token = int(np.argmax(model.step(state, token)))
    decode_s = time.perf_counter() - start
    peak, rss = peak_and_rss()
    print(json.dumps({"load_s": load_s, "prefill_tok_s": args.pp / prefill_s, "decode_tok_s": args.tg / decode_s,
                      "peak_mib": peak / 2**20, "rss_mib": rss / 2**20, "max_context": model.max_context}))


if __name__ == "__main__":
    main()
