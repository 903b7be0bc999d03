#!/usr/bin/env python3
"""Times one llama.cpp prefill of given token ids, for bench_prefill's comparison.

The whole prompt is one batch (n_batch = n_ubatch = N), so llama.cpp does what
msascope's forward does: a single pass over N tokens. Only llm.eval() is timed
(model load and context creation are not). Prints one JSON object:

  {"n_tokens": N, "threads": T, "seconds": best, "tokens_per_s": N / best,
   "runs": [...], "logits": "last"|"all", "flash_attn": bool, "version": "..."}

--logits all asks for logits at every position (what msascope computes, since it
needs the per-token loss); the default, last, is llama.cpp's own prompt mode
where the LM head runs for the final position only.

Usage: llamacpp_prefill.py --model M.gguf --tokens-file ids.txt --threads 2 [--repeats 2]
       (ids.txt: whitespace-separated token ids)
"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens-file", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--logits", choices=["last", "all"], default="last")
    ap.add_argument("--flash-attn", type=int, default=1, help="1: llama.cpp's fused CPU attention (faster at 8K)")
    args = ap.parse_args()

    try:
        import llama_cpp
        from llama_cpp import Llama
    except ImportError as e:
        print(json.dumps({"error": f"llama_cpp not importable: {e}"}))
        return 3

    with open(args.tokens_file) as f:
        tokens = [int(t) for t in f.read().split()]
    n = len(tokens)
    llm = Llama(model_path=args.model, n_ctx=n, n_batch=n, n_ubatch=n, n_threads=args.threads,
                n_threads_batch=args.threads, logits_all=args.logits == "all", flash_attn=bool(args.flash_attn),
                verbose=False)
    runs = []
    for _ in range(max(1, args.repeats)):
        llm.reset()
        start = time.perf_counter()
        llm.eval(tokens)
        runs.append(time.perf_counter() - start)
    best = min(runs)
    print(json.dumps({"n_tokens": n, "threads": args.threads, "seconds": best, "tokens_per_s": n / best,
                      "runs": runs, "logits": args.logits, "flash_attn": bool(args.flash_attn),
                      "version": llama_cpp.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
