#!/usr/bin/env python3
"""Peers for `msascope-cli bench`: PyTorch SDPA (flash backend, dense causal GQA)
and FlexAttention with msascope's own selection as a block mask.

Prints one JSON object on its last line: sdpa_ms, flex_ms (and sdpa_decode_ms
with --decode), torch, device; {"error": ...} when torch or a GPU is missing.

FlexAttention works on (query block x key block) tiles, so a per-token
selection becomes: the union of the selections of the 128 tokens of a query
block as the tile's key blocks (a tile is "full" when every token of the query
block chose it and it lies below the diagonal), plus a token-level mask_mod
that checks the token's own selection and the causal mask. That is the closest
block mask to MSA's selection that Flex can express; its cost grows with how
much the tokens of a query block disagree.
"""
import argparse
import json
import sys


def _median_event_ms(run, reps, per_run=1):
    """Median over reps of the event-timed run(), divided by per_run."""
    import torch
    times = []
    for _ in range(max(1, reps)):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        run()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / per_run)
    times.sort()
    return times[len(times) // 2]


def median_ms(fn, reps):
    import torch
    fn()
    torch.cuda.synchronize()
    return _median_event_ms(fn, reps)


def graph_median_ms(fn, reps, inner=10):
    """fn captured once into a CUDA graph; median over reps of `inner` replays."""
    import torch
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    g.replay()
    torch.cuda.synchronize()

    def replays():
        for _ in range(inner):
            g.replay()
    return _median_event_ms(replays, reps, inner)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--context", type=int, required=True)
    p.add_argument("--heads", type=int, default=64)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--slots", type=int, default=16)
    p.add_argument("--selection", default="")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--decode", action="store_true")
    p.add_argument("--no-dense", action="store_true")
    a = p.parse_args()
    out = {}
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"error": f"torch unavailable: {e}"}))
        return
    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch sees no CUDA device"}))
        return
    out["torch"] = torch.__version__
    out["device"] = torch.cuda.get_device_name()
    N, H, G, d, B = a.context, a.heads, a.kv_heads, a.dim, a.block
    r = H // G
    dev = "cuda"
    torch.manual_seed(0)
    q = torch.randn(1, H, N, d, dtype=torch.bfloat16, device=dev)
    k = torch.randn(1, G, N, d, dtype=torch.bfloat16, device=dev)
    v = torch.randn(1, G, N, d, dtype=torch.bfloat16, device=dev)
    reps = a.reps if N < (1 << 17) else 1

    from torch.nn.attention import SDPBackend, sdpa_kernel

    def sdpa(qq, causal):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            try:
                return F.scaled_dot_product_attention(qq, k, v, is_causal=causal, enable_gqa=True)
            except Exception:  # older flash without GQA: expand the KV heads
                kk = k.repeat_interleave(r, dim=1)
                vv = v.repeat_interleave(r, dim=1)
                return F.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)

    if not a.no_dense:
        try:
            out["sdpa_ms"] = median_ms(lambda: sdpa(q, True), reps)
        except Exception as e:  # noqa: BLE001
            out["sdpa_error"] = str(e)[:300]
    if a.decode:
        q1 = q[:, :, -1:, :].contiguous()
        try:
            out["sdpa_decode_ms"] = median_ms(lambda: sdpa(q1, False), max(a.reps, 10))
        except Exception as e:  # noqa: BLE001
            out["sdpa_decode_error"] = str(e)[:300]
        try:  # the same step as a graph replay, as ours is timed
            out["sdpa_decode_graph_ms"] = graph_median_ms(lambda: sdpa(q1, False), max(a.reps, 10))
        except Exception as e:  # noqa: BLE001
            out["sdpa_decode_graph_error"] = str(e)[:300]

    if a.selection:
        try:
            import numpy as np
            from torch.nn.attention.flex_attention import BlockMask, flex_attention

            S = a.slots
            sel = torch.from_numpy(np.fromfile(a.selection, dtype=np.int32).reshape(N, G, S)).to(dev)
            nb = (N + B - 1) // B
            nqb = nb
            selg = sel.permute(1, 0, 2).contiguous()  # [G, N, S]
            valid = selg >= 0
            qb = (torch.arange(N, device=dev) // B).view(1, N, 1).expand(G, N, S)
            gi = torch.arange(G, device=dev).view(G, 1, 1).expand(G, N, S)
            count = torch.zeros(G, nqb, nb, dtype=torch.int32, device=dev)
            flat = (gi * nqb + qb) * nb + selg.clamp(min=0)
            count.view(-1).index_add_(0, flat[valid].long(), torch.ones_like(flat[valid], dtype=torch.int32))
            tokens_in_qb = torch.clamp(N - torch.arange(nqb, device=dev) * B, max=B).view(1, nqb, 1)
            below = torch.arange(nb, device=dev).view(1, 1, nb) < torch.arange(nqb, device=dev).view(1, nqb, 1)
            full = (count == tokens_in_qb) & below
            partial = (count > 0) & ~full

            def to_indices(m):
                num = m.sum(-1, dtype=torch.int32)
                idx = torch.argsort((~m).to(torch.int8), dim=-1, stable=True).to(torch.int32)
                # one group's block lists serve its r query heads
                num = num.repeat_interleave(r, dim=0).unsqueeze(0).contiguous()
                idx = idx.repeat_interleave(r, dim=0).unsqueeze(0).contiguous()
                return num, idx

            kv_num, kv_idx = to_indices(partial)
            full_num, full_idx = to_indices(full)
            out["flex_tiles_partial"] = int(partial.sum().item()) * r
            out["flex_tiles_full"] = int(full.sum().item()) * r

            def mask_mod(b, h, q_idx, kv_idx):
                g = h // r
                kb = kv_idx // B
                hit = selg[g, q_idx, 0] == kb
                for i in range(1, S):
                    hit = hit | (selg[g, q_idx, i] == kb)
                return hit & (q_idx >= kv_idx)

            bm = BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=B, mask_mod=mask_mod,
                                          seq_lengths=(N, N))
            flex = torch.compile(flex_attention)
            out["flex_ms"] = median_ms(lambda: flex(q, k, v, block_mask=bm, enable_gqa=True), reps)
        except Exception as e:  # noqa: BLE001
            out["flex_error"] = (type(e).__name__ + ": " + str(e))[:300]
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
