#!/usr/bin/env python3
"""Reference logits for tests/test_real_model.cpp from an independent implementation.

Runs llama.cpp (through llama-cpp-python) on the default SmolLM2 GGUF over
tests/fixtures/reference_text.txt in one prefill and writes
tests/fixtures/smollm2_reference.json:

  {
    "source": "llama-cpp-python <version>", "model_file": ..., "model_bytes": ...,
    "text_file": ..., "add_bos": false,
    "tokens":      [N]       token ids from llama.cpp's own tokenizer, so the C++
                             test does not depend on msascope's tokenizer agreeing,
    "top_ids":     [N][5]    the reference's 5 largest logits at each position (best first),
    "top_logits":  [N][5]    those logits,
    "logsumexp":   [N]       log sum exp of the full logit row,
    "nll":         [N-1]     -log p(tokens[t+1]) under the reference,
    "f64_top_ids", "f64_top_logits", "f64_logsumexp", "f64_nll":
                             the same from a float64 numpy forward (below)
  }

Why two references. llama.cpp is the independent production implementation,
but its CPU matmuls round activations to 8-bit blocks (Q8_1/Q8_0) and its KV
cache to f16; on this model and text that alone moves the top-1 token at ~4%
of positions (measured: a float64 forward agrees with llama.cpp at 95.6%, and
still only 96.3% with an f32 KV cache). So the tight check (>= 99% top-1,
logits to ~1e-3) is against a float64 forward written here with numpy on the
gguf package's dequantizer, with llama.cpp's interleaved RoPE applied to the
raw GGUF Q/K rows: it shares no code or layout convention with msascope's
loader (which un-permutes those rows to the rotate_half convention).

Logits are rounded to 1e-4, far below the differences being tested (llama.cpp
quantizes activations to 8 bits inside its Q4_1 matmuls; msascope multiplies
dequantized float32 weights by float32 activations).

Usage: python3 scripts/make_reference_logits.py [--model PATH] [--threads N]
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_model_path():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "msascope", "SmolLM2-135M-Instruct.Q4_1.gguf")


def float64_forward(model_path, tokens):
    """Llama forward in float64 on the raw GGUF tensors; returns logits [N, vocab]."""
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(model_path)
    fields = {f.name: f for f in reader.fields.values()}

    def scalar(key):
        f = fields[key]
        return f.parts[f.data[0]][0].item()

    arch = bytes(fields["general.architecture"].parts[-1]).decode()
    n_layers = int(scalar(f"{arch}.block_count"))
    n_heads = int(scalar(f"{arch}.attention.head_count"))
    n_kv = int(scalar(f"{arch}.attention.head_count_kv"))
    hidden = int(scalar(f"{arch}.embedding_length"))
    eps = float(scalar(f"{arch}.attention.layer_norm_rms_epsilon"))
    theta = float(scalar(f"{arch}.rope.freq_base"))
    d = hidden // n_heads
    w = {}
    for t in reader.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        w[t.name] = a.reshape([int(x) for x in reversed(t.shape)])
    n = len(tokens)

    def rms(x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight

    angle = np.arange(n)[:, None] * theta ** (-np.arange(0, d, 2) / d)
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]

    def rope_interleaved(v):  # llama.cpp "normal" RoPE on GGUF rows: pairs (2i, 2i+1)
        a, b = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = b * cos + a * sin
        return out

    causal = np.triu(np.full((n, n), -np.inf), 1)
    x = w["token_embd.weight"][tokens]
    for layer in range(n_layers):
        p = f"blk.{layer}."
        h = rms(x, w[p + "attn_norm.weight"])
        q = rope_interleaved((h @ w[p + "attn_q.weight"].T).reshape(n, n_heads, d))
        k = rope_interleaved((h @ w[p + "attn_k.weight"].T).reshape(n, n_kv, d))
        v = (h @ w[p + "attn_v.weight"].T).reshape(n, n_kv, d)
        att = np.empty((n, n_heads, d))
        for head in range(n_heads):
            g = head // (n_heads // n_kv)
            s = q[:, head] @ k[:, g].T / np.sqrt(d) + causal
            s = np.exp(s - s.max(1, keepdims=True))
            att[:, head] = (s / s.sum(1, keepdims=True)) @ v[:, g]
        x = x + att.reshape(n, -1) @ w[p + "attn_output.weight"].T
        h = rms(x, w[p + "ffn_norm.weight"])
        gate, up = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "ffn_down.weight"].T
    head_w = w.get("output.weight", w["token_embd.weight"])
    return rms(x, w["output_norm.weight"]) @ head_w.T


def summarize(logits, tokens, top):
    ids = np.argsort(-logits, axis=1, kind="stable")[:, :top]
    vals = np.take_along_axis(logits, ids, axis=1)
    row_max = logits.max(axis=1, keepdims=True)
    lse = row_max[:, 0] + np.log(np.exp(logits - row_max).sum(axis=1))
    nll = [float(lse[t] - logits[t, tokens[t + 1]]) for t in range(len(tokens) - 1)]
    return ids, vals, lse, nll


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=default_model_path())
    ap.add_argument("--text", default=os.path.join(ROOT, "tests", "fixtures", "reference_text.txt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "smollm2_reference.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args()

    import llama_cpp
    from llama_cpp import Llama

    if not os.path.exists(args.model):
        sys.exit(f"model not found: {args.model}")
    with open(args.text, "rb") as f:
        text = f.read()

    # Tokenize once with a small context just to learn N, then build the real
    # context so the whole text is one batch (one prefill, no KV-cache reuse).
    probe = Llama(model_path=args.model, n_ctx=64, vocab_only=True, verbose=False)
    add_bos = probe.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
    tokens = probe.tokenize(text, add_bos=add_bos, special=False)
    del probe
    n = len(tokens)
    llm = Llama(model_path=args.model, n_ctx=n + 16, n_batch=n, n_ubatch=n, logits_all=True,
                n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    llm.reset()
    llm.eval(tokens)
    logits = np.array(llm.scores[:n], dtype=np.float64)  # [N, vocab]
    vocab = logits.shape[1]

    top, top_logits, lse, nll = summarize(logits, tokens, args.top)
    del llm
    f64 = float64_forward(args.model, tokens)
    f64_top, f64_top_logits, f64_lse, f64_nll = summarize(f64, tokens, args.top)
    agree = float((top[:, 0] == f64_top[:, 0]).mean())

    with open(args.model, "rb") as f:
        model_sha = hashlib.sha256(f.read()).hexdigest()
    out = {
        "source": f"llama-cpp-python {llama_cpp.__version__}",
        "model_file": os.path.basename(args.model),
        "model_bytes": os.path.getsize(args.model),
        "model_sha256": model_sha,
        "text_file": os.path.relpath(args.text, ROOT),
        "add_bos": add_bos,
        "vocab": vocab,
        "threads": args.threads,
        "tokens": [int(t) for t in tokens],
        "top_ids": top.astype(int).tolist(),
        "top_logits": [[round(float(v), 4) for v in row] for row in top_logits],
        "logsumexp": [round(float(v), 4) for v in lse],
        "nll": [round(v, 4) for v in nll],
        "f64_top_ids": f64_top.astype(int).tolist(),
        "f64_top_logits": [[round(float(v), 4) for v in row] for row in f64_top_logits],
        "f64_logsumexp": [round(float(v), 4) for v in f64_lse],
        "f64_nll": [round(v, 4) for v in f64_nll],
    }
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    ppl = float(np.exp(np.mean(nll)))
    print(f"{n} tokens, vocab {vocab}, llama.cpp perplexity {ppl:.4f}, float64 perplexity "
          f"{float(np.exp(np.mean(f64_nll))):.4f}, top-1 agreement llama.cpp vs float64 {100 * agree:.2f}% "
          f"-> {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
