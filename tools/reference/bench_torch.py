#!/usr/bin/env python3
"""bench_torch.py: the PyTorch side of bench/compare.sh.

It loads the model that `sevo bench --size S --write_model DIR` wrote (DIR/config.json,
DIR/model.safetensors) and the batch it wrote beside it (DIR/batch.safetensors), builds
the same vision-language model in PyTorch eager on the CPU -- batched, with PyTorch's
fused scaled_dot_product_attention, F.rms_norm / F.layer_norm, and AdamW with
fused=True -- and measures what `sevo bench --model_path DIR` measures, in the same order
and with the same counts:

  train    zero_grad, forward, masked mean cross-entropy, backward, clip_grad_norm_(1.0),
           AdamW(lr 1e-4, weight decay 0): tokens/s over B*T tokens, 2 warmup steps
  prefill  one sequence: the image's features and prefill_len tokens (row 0 of the
           batch) into a preallocated KV cache, logits of the last token
  decode   decode_len tokens one at a time with the KV cache, logits of each
  memory   the process's peak resident set (ru_maxrss)

`--check` first verifies that this batched model is the parity reference's model: the
logits of every row, in float64, against make_fixtures.decode (which tests/parity checks
sevo against) run one sequence at a time.

Usage: bench_torch.py --model_path DIR [--steps N] [--reps N] [--threads N] [--json]
(the batch size and sequence length are those of DIR/batch.safetensors).
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as ref  # noqa: E402  (the parity reference: its Config and activations)


def act(name, x):
    return ref.activation(name, x, ref.NO_MUTATION)


def norm(tw, x, p, name):
    if tw["norm"] == "rmsnorm":
        return F.rms_norm(x, (tw["D"],), p[name + ".weight"], tw["eps"])
    return F.layer_norm(x, (tw["D"],), p[name + ".weight"], p.get(name + ".bias"), tw["eps"])


class Rope:
    """cos/sin tables [max_len, hd] of Hugging Face's rotate_half RoPE, built once."""

    def __init__(self, hd, theta, max_len, dtype):
        inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.arange(max_len, dtype=torch.float64)[:, None] * inv[None, :]
        self.cos = torch.cat((ang.cos(), ang.cos()), -1).to(dtype)
        self.sin = torch.cat((ang.sin(), ang.sin()), -1).to(dtype)

    def __call__(self, x, start):  # x [B, heads, T, hd]
        T, h = x.shape[2], x.shape[3] // 2
        cos, sin = self.cos[start : start + T], self.sin[start : start + T]
        return x * cos + torch.cat((-x[..., h:], x[..., :h]), -1) * sin


def mlp(tw, p, pre, x):
    g = lambda n, y: F.linear(y, p[f"{pre}.mlp.{n}.weight"], p.get(f"{pre}.mlp.{n}.bias"))
    if tw["gated"]:
        return g("down_proj", F.silu(g("gate_proj", x)) * g("up_proj", x))
    return g("fc2", act(tw["act"], g("fc1", x)))


def attention(tw, p, pre, x, causal, rope=None, cache=None, start=0):
    """x [B, T, D]. With cache (k, v tensors [B, KVH, max_len, hd]) the new keys and
    values go in at start..start+T and the queries attend to 0..start+T."""
    B, T, _ = x.shape
    H, KVH = tw["H"], tw["KVH"]
    hd = tw["D"] // H
    lin = lambda n, y: F.linear(y, p[f"{pre}.self_attn.{n}.weight"], p.get(f"{pre}.self_attn.{n}.bias"))
    q = lin("q_proj", x).view(B, T, H, hd).transpose(1, 2)
    k = lin("k_proj", x).view(B, T, KVH, hd).transpose(1, 2)
    v = lin("v_proj", x).view(B, T, KVH, hd).transpose(1, 2)
    if rope is not None:
        q, k = rope(q, start), rope(k, start)
    if cache is not None:
        kc, vc = cache
        kc[:, :, start : start + T] = k
        vc[:, :, start : start + T] = v
        k, v = kc[:, :, : start + T], vc[:, :, : start + T]
        causal = causal and T > 1  # one new query attends to every cached key
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=KVH < H)
    o = "out_proj" if pre.startswith("vision") else "o_proj"
    return lin(o, out.transpose(1, 2).reshape(B, T, H * hd))


def image_features(cfg, p, images):
    """images [B, 3, S, S] -> [B, P, D_text]."""
    vp, tw = "vision_tower.vision_model", cfg.vision
    x = F.conv2d(images, p[f"{vp}.embeddings.patch_embedding.weight"], p[f"{vp}.embeddings.patch_embedding.bias"],
                 stride=cfg.patch_size)
    x = x.flatten(2).transpose(1, 2) + p[f"{vp}.embeddings.position_embedding.weight"]
    for i in range(tw["L"]):
        pre = f"{vp}.encoder.layers.{i}"
        x = x + attention(tw, p, pre, norm(tw, x, p, pre + ".layer_norm1"), False)
        x = x + mlp(tw, p, pre, norm(tw, x, p, pre + ".layer_norm2"))
    x = norm(tw, x, p, f"{vp}.post_layernorm")
    mp = "multi_modal_projector"
    x = act(cfg.projector_act, F.linear(x, p[f"{mp}.linear_1.weight"], p[f"{mp}.linear_1.bias"]))
    return F.linear(x, p[f"{mp}.linear_2.weight"], p[f"{mp}.linear_2.bias"])


def decoder(cfg, p, x, rope, caches=None, start=0):
    """Embedded inputs x [B, T, D] at positions start.. -> final hidden states."""
    lm, tw = "language_model.model", cfg.text
    for i in range(tw["L"]):
        pre = f"{lm}.layers.{i}"
        x = x + attention(tw, p, pre, norm(tw, x, p, pre + ".input_layernorm"), True, rope,
                          caches[i] if caches else None, start)
        x = x + mlp(tw, p, pre, norm(tw, x, p, pre + ".post_attention_layernorm"))
    return norm(tw, x, p, f"{lm}.norm")


def head(cfg, p):
    return p["language_model.model.embed_tokens.weight"] if cfg.tied else p["language_model.lm_head.weight"]


def embed(cfg, p, ids, feats):
    """ids [B, T]; the image tokens of row b take feats[b] in order (LLaVA's scatter)."""
    x = F.embedding(ids, p["language_model.model.embed_tokens.weight"])
    if feats is not None:
        mask = (ids == cfg.image_token).unsqueeze(-1)
        x = x.masked_scatter(mask, feats.to(x.dtype))
    return x


def train_logits(cfg, p, ids, images, rope):
    hidden = decoder(cfg, p, embed(cfg, p, ids, image_features(cfg, p, images)), rope)
    return hidden @ head(cfg, p).T


def check(cfg, p, ids, images):
    """This batched model against the parity reference, in float64."""
    p64 = {k: v.detach().double() for k, v in p.items()}
    rope = Rope(cfg.text["D"] // cfg.text["H"], cfg.rope_theta, ids.shape[1], torch.float64)
    with torch.no_grad():
        got = train_logits(cfg, p64, ids, images.double(), rope)
        worst = 0.0
        for b in range(ids.shape[0]):
            _, want = ref.decode(cfg, p64, ids[b], images[b].double())
            worst = max(worst, float(((got[b] - want).abs().max() / want.abs().max())))
    if worst > 1e-9:
        sys.exit(f"bench_torch.py: --check: logits differ from make_fixtures.decode by {worst:.3g}")
    print(f"bench_torch.py: --check: batched logits match make_fixtures.decode (worst relative {worst:.2g})",
          file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model_path")
    ap.add_argument("--sgemm_shape", help="MxNxK: only time torch.matmul on one product of this shape "
                    "(best of 40, as sevo bench --sgemm_only)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--prefill_len", type=int, default=0, help="default: patches + 41, as sevo bench")
    ap.add_argument("--decode_len", type=int, default=64)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.sgemm_shape:
        M, N, K = (int(x) for x in a.sgemm_shape.split("x"))
        A = (torch.arange(M * K) % 7).float().mul(0.1).view(M, K)
        Bm = (torch.arange(K * N) % 5).float().mul(0.1).view(K, N)
        best = 0.0
        for r in range(-1, 40):
            t0 = time.perf_counter()
            torch.matmul(A, Bm)
            g = 2.0 * M * N * K / (time.perf_counter() - t0) / 1e9
            if r >= 0:
                best = max(best, g)
        print(json.dumps({"framework": "pytorch", "threads": torch.get_num_threads(), "shape": a.sgemm_shape,
                          "sgemm_gflops": round(best, 2)}))
        return
    if not a.model_path:
        ap.error("--model_path is required")
    cfg = ref.Config(os.path.join(a.model_path, "config.json"))
    p = load_file(os.path.join(a.model_path, "model.safetensors"))
    batch = load_file(os.path.join(a.model_path, "batch.safetensors"))
    ids, targets, images = batch["ids"].long(), batch["targets"].long(), batch["images"]
    B, T = ids.shape
    prefill_len = a.prefill_len or cfg.num_patches + 41
    if a.check:
        check(cfg, p, ids, images)

    params = list(p.values())
    for t in params:
        t.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, fused=True)
    rope = Rope(cfg.text["D"] // cfg.text["H"], cfg.rope_theta, max(T, prefill_len + a.decode_len + 1), torch.float32)
    t_train = 0.0
    for s in range(-2, a.steps):  # two warmup steps
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = train_logits(cfg, p, ids, images, rope)
        loss = F.cross_entropy(logits.view(B * T, -1), targets.view(-1), ignore_index=-1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if s >= 0:
            t_train += time.perf_counter() - t0
    del logits, loss
    opt.zero_grad(set_to_none=True)

    tw = cfg.text
    hd, max_len = tw["D"] // tw["H"], prefill_len + a.decode_len + 1
    caches = [tuple(torch.zeros(1, tw["KVH"], max_len, hd) for _ in range(2)) for _ in range(tw["L"])]
    W = head(cfg, p)
    t_prefill = t_decode = 0.0
    with torch.inference_mode():
        for rep in range(-1, a.reps):  # one warmup
            t0 = time.perf_counter()
            feats = image_features(cfg, p, images[:1])
            h = decoder(cfg, p, embed(cfg, p, ids[:1, :prefill_len], feats), rope, caches, 0)
            logits = h[:, -1] @ W.T
            t1 = time.perf_counter()
            for k in range(a.decode_len):
                tok = torch.tensor([[10 + k % (cfg.vocab_size - 10)]])
                h = decoder(cfg, p, embed(cfg, p, tok, None), rope, caches, prefill_len + k)
                logits = h[:, -1] @ W.T
            if rep >= 0:
                t_prefill += t1 - t0
                t_decode += time.perf_counter() - t1
    assert torch.isfinite(logits).all()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    r = {
        "framework": "pytorch",
        "torch": torch.__version__,
        "model": a.model_path,
        "params": sum(t.numel() for t in params),
        "threads": torch.get_num_threads(),
        "batch_size": B,
        "seq_len": T,
        "prefill_len": prefill_len,
        "decode_len": a.decode_len,
        "train_tokens_per_s": B * T * a.steps / t_train,
        "prefill_tokens_per_s": prefill_len * a.reps / t_prefill,
        "decode_tokens_per_s": a.decode_len * a.reps / t_decode,
        "peak_rss_mib": peak,
    }
    if a.json:
        print(json.dumps(r))
    else:
        for k, v in r.items():
            print(f"  {k:22s} {v}")


if __name__ == "__main__":
    main()
