#!/usr/bin/env python3
"""make_fixtures.py: the PyTorch reference that tests/parity/test_parity.c compares sevo with.

It reads a checkpoint that sevo wrote (config.json, model.safetensors, tokenizer.json,
confidence_head.safetensors), builds the same vision-language model from plain torch
operations -- its own code, written from sevo's documented semantics (DESIGN.md section 3,
src/model/vlm.h), not from sevo's source -- and writes what it computes on a fixed small
batch to reference_<x>.safetensors:

  logits, hidden, logp_all    the forward of every sequence, run one sequence at a time
  sft.*                       the masked mean cross-entropy and every parameter's gradient
  adamw.*                     3 steps of torch.optim.AdamW with sevo's schedule and
                              clip_grad_norm_
  dpo.*                       the sequence log-probs of image-conditioned chosen/rejected
                              pairs, the DPO loss in 5 variants (DPO-Positive the
                              fifth) and its gradients
  gate.*, reinforce.*         the HSR-EE gate's BCE and gradients, REINFORCE's d log P/d theta
  schedule.*                  a longer learning-rate schedule

Everything is computed in float64 and stored as float32, so the fixtures carry the exact
values (to float32 rounding) and the C test measures sevo's float32 error alone. The
script also prints how far torch's own float32 run lands from float64 (the error budget
float32 implies) and how far plausible implementation mistakes would move the logits
(so that the tolerances are shown to catch them).

It also loads sevo's tokenizer.json with Hugging Face `tokenizers` and records the ids of
fixed strings in tokenizer_cases.json.

Usage: make_fixtures.py FIXTURE_DIR   (after `parity_test_parity --write-checkpoints DIR`;
scripts/make-fixtures.sh runs both). Output is deterministic: fixed inputs, float64 on
one thread, deterministic algorithms, no timestamps.
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer

# ------------------------------------------------------------------ the model


class Config:
    """The fields of sevo's config.json (Hugging Face LLaVA layout) the model uses."""

    def __init__(self, path):
        with open(path) as f:
            c = json.load(f)
        v, t = c["vision_config"], c["text_config"]
        # sevo keeps these in float32: round them as it does
        f32 = lambda x: float(np.float32(x))
        self.image_size, self.patch_size = v["image_size"], v["patch_size"]
        self.grid = self.image_size // self.patch_size
        self.num_patches = self.grid * self.grid
        self.vision = self.tower(v)
        self.text = self.tower(t)
        self.text["eps"] = f32(t.get("rms_norm_eps", t["norm_eps"]))
        self.projector_act = c["projector_hidden_act"]
        self.vocab_size = t["vocab_size"]
        self.rope_theta = f32(t["rope_theta"])
        self.tied = c["tie_word_embeddings"]
        self.image_token = c["image_token_index"]
        self.bos, self.eos, self.pad = t["bos_token_id"], t["eos_token_id"], t["pad_token_id"]

    @staticmethod
    def tower(o):
        return {
            "D": o["hidden_size"],
            "F": o["intermediate_size"],
            "L": o["num_hidden_layers"],
            "H": o["num_attention_heads"],
            "KVH": o.get("num_key_value_heads", o["num_attention_heads"]),
            "act": o["hidden_act"],
            "gated": o["gated_mlp"],
            "norm": o["norm_type"],
            "eps": float(np.float32(o["norm_eps"])),
            "bias": o["attention_bias"],
        }


# Deliberate mistakes, for the sensitivity report only (never in the fixtures).
NO_MUTATION = {}


def activation(name, x, mut):
    if mut.get("swap_gelu") and name.startswith("gelu"):
        name = "gelu" if name != "gelu" else "gelu_pytorch_tanh"
    if name == "gelu":
        return F.gelu(x)
    if name == "gelu_pytorch_tanh":
        return F.gelu(x, approximate="tanh")
    if name == "silu":
        # sevo before the fix this suite found: ungated SiLU computed as erf-GELU
        return F.gelu(x) if mut.get("silu_as_gelu") else F.silu(x)
    raise ValueError("unknown activation " + name)


def norm(tw, x, w, b):
    if tw["norm"] == "rmsnorm":
        return F.rms_norm(x, (tw["D"],), w, tw["eps"])
    return F.layer_norm(x, (tw["D"],), w, b, tw["eps"])


def rope(x, pos, theta, mut):
    """Hugging Face rotate_half RoPE on x [heads, T, hd]: dimension i pairs with i + hd/2."""
    if mut.get("rope") == "none":
        return x
    hd = x.shape[-1]
    inv_freq = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = pos.to(torch.float64)[:, None] * inv_freq[None, :]
    cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    if mut.get("rope") == "interleaved":  # GPT-J pairs (2i, 2i+1): a different convention
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), -1).flatten(-2)
    cos, sin = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return x * cos + torch.cat((-x2, x1), -1) * sin


def attention(tw, p, pre, x, causal, pos, theta, mut):
    """Multi-head attention over one sequence x [T, D] with grouped-query heads."""
    T, H, KVH = x.shape[0], tw["H"], tw["KVH"]
    hd = tw["D"] // H
    o_name = "out_proj" if pre.startswith("vision") else "o_proj"
    bias = lambda n: p.get(f"{pre}.self_attn.{n}.bias")
    q = F.linear(x, p[f"{pre}.self_attn.q_proj.weight"], bias("q_proj")).view(T, H, hd).transpose(0, 1)
    k = F.linear(x, p[f"{pre}.self_attn.k_proj.weight"], bias("k_proj")).view(T, KVH, hd).transpose(0, 1)
    v = F.linear(x, p[f"{pre}.self_attn.v_proj.weight"], bias("v_proj")).view(T, KVH, hd).transpose(0, 1)
    if pos is not None:
        q, k = rope(q, pos, theta, mut), rope(k, pos, theta, mut)
    if mut.get("gqa_tile") and KVH < H:  # head h on kv head h % KVH instead of h // (H/KVH)
        k, v = k.repeat(H // KVH, 1, 1), v.repeat(H // KVH, 1, 1)
    # PyTorch's own attention; enable_gqa maps query head h to kv head h // (H / KVH)
    out = F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=causal, enable_gqa=True)[0]
    out = out.transpose(0, 1).reshape(T, H * hd)
    return F.linear(out, p[f"{pre}.self_attn.{o_name}.weight"], p.get(f"{pre}.self_attn.{o_name}.bias"))


def mlp(tw, p, pre, x, mut):
    g = lambda n: (p[f"{pre}.mlp.{n}.weight"], p.get(f"{pre}.mlp.{n}.bias"))
    if tw["gated"]:  # SwiGLU (sevo requires hidden_act silu for a gated MLP)
        return F.linear(F.silu(F.linear(x, *g("gate_proj"))) * F.linear(x, *g("up_proj")), *g("down_proj"))
    return F.linear(activation(tw["act"], F.linear(x, *g("fc1")), mut), *g("fc2"))


def block(tw, p, pre, x, vision, causal, pos, theta, mut):
    n1, n2 = ("layer_norm1", "layer_norm2") if vision else ("input_layernorm", "post_attention_layernorm")
    h = norm(tw, x, p[f"{pre}.{n1}.weight"], p.get(f"{pre}.{n1}.bias"))
    x = x + attention(tw, p, pre, h, causal, pos, theta, mut)
    h = norm(tw, x, p[f"{pre}.{n2}.weight"], p.get(f"{pre}.{n2}.bias"))
    return x + mlp(tw, p, pre, h, mut)


def image_features(cfg, p, image, mut):
    """One image [3, S, S] -> [num_patches, text hidden]: ViT, final norm, projector."""
    vp = "vision_tower.vision_model"
    tw = cfg.vision
    w = p[f"{vp}.embeddings.patch_embedding.weight"]
    if mut.get("patch_transpose"):  # pixels read x-major inside each patch
        w = w.transpose(2, 3)
    x = F.conv2d(image[None], w, p[f"{vp}.embeddings.patch_embedding.bias"], stride=cfg.patch_size)
    x = x[0].flatten(1).transpose(0, 1)  # [P, Dv], patches in row-major (y, x) order
    if not mut.get("no_position_embedding"):
        x = x + p[f"{vp}.embeddings.position_embedding.weight"]
    for layer in range(tw["L"]):
        x = block(tw, p, f"{vp}.encoder.layers.{layer}", x, True, bool(mut.get("vision_causal")), None, None, mut)
    x = norm(tw, x, p[f"{vp}.post_layernorm.weight"], p.get(f"{vp}.post_layernorm.bias"))
    x = F.linear(x, p["multi_modal_projector.linear_1.weight"], p["multi_modal_projector.linear_1.bias"])
    x = activation(cfg.projector_act, x, mut)
    return F.linear(x, p["multi_modal_projector.linear_2.weight"], p["multi_modal_projector.linear_2.bias"])


def decode(cfg, p, ids, image, mut=NO_MUTATION):
    """One sequence: token ids [T] (with num_patches image tokens when image is given) ->
    (final hidden states [T, D], logits [T, V])."""
    lm = "language_model.model"
    x = p[f"{lm}.embed_tokens.weight"][ids]
    is_img = ids == cfg.image_token
    if image is not None:
        feats = image_features(cfg, p, image, mut)
        if mut.get("image_reversed"):
            feats = feats.flip(0)
        # the image tokens take the image's features in order (LLaVA's masked scatter)
        assert int(is_img.sum()) == cfg.num_patches
        x = x.masked_scatter(is_img[:, None], feats)
    else:
        assert int(is_img.sum()) == 0
    pos = torch.arange(len(ids))
    tw = cfg.text
    causal = not mut.get("text_bidirectional")
    for layer in range(tw["L"]):
        x = block(tw, p, f"{lm}.layers.{layer}", x, False, causal, pos, cfg.rope_theta, mut)
    hidden = norm(tw, x, p[f"{lm}.norm.weight"], p.get(f"{lm}.norm.bias"))
    head = p[f"{lm}.embed_tokens.weight"] if cfg.tied else p["language_model.lm_head.weight"]
    return hidden, hidden @ head.T


# ------------------------------------------------------------------ inputs


def encode(tok, text):
    return tok.encode(text).ids


def sequences(cfg, tok, kind):
    """The fixed token sequences, laid out as sevo's prompts (src/model/prompt.h):
    (ids, loss mask, image index or -1) each; loss 1 marks response tokens."""
    sp = {name: tok.token_to_id(name) for name in ("<bos>", "<eos>", "<image>", "<perceive>", "<step>", "<answer>",
                                                   "<text>")}
    P = cfg.num_patches

    def build(parts, image):
        ids, loss = [], []
        for piece, trained in parts:
            piece = encode(tok, piece) if isinstance(piece, str) else piece
            ids += piece
            loss += [trained] * len(piece)
        return ids, loss, image

    img = [sp["<image>"]] * P
    if kind == "sft":
        return [
            # perceive and reason, with image 0
            build([([sp["<bos>"]] + img, 0), ("is there a red circle in the image?", 0), ([sp["<perceive>"]], 0),
                   ("a red circle at top-left.", 1), ([sp["<step>"]], 1), ("the circle is red.", 1),
                   ([sp["<answer>"]], 1), ("yes", 1), ([sp["<eos>"]], 1)], 0),
            # answer from the description alone: no image
            build([([sp["<bos>"], sp["<text>"]], 0), ("what colour is the square?", 0), ([sp["<perceive>"]], 0),
                   ("a blue square at bottom-right.", 0), ([sp["<answer>"]], 0), ("blue", 1),
                   ([sp["<eos>"]], 1)], -1),
            # answer only, with image 1
            build([([sp["<bos>"]] + img, 0), ("count the objects:", 0), ([sp["<answer>"]], 0), ("2", 1),
                   ([sp["<eos>"]], 1)], 1),
        ]
    # DPO pairs as SR-DPO builds them: the perception prompt, then y and <step> (trained)
    pairs = [(0, "is there a red circle in the image?", "a red circle at top-left.",
              "a red circle and a blue square at bottom-right."),
             (1, "what colour is the square?", "the square is blue.", "the square is red.")]
    out = []
    for image, q, chosen, rejected in pairs:
        for y in (chosen, rejected):
            out.append(build([([sp["<bos>"]] + img, 0), (q, 0), ([sp["<perceive>"]], 0), (y, 1), ([sp["<step>"]], 1)],
                             image))
    return out


def images(cfg):
    """Two fixed images of normalised pixels in [-1, 1) (numpy's PCG64: stable across
    versions)."""
    rng = np.random.default_rng(20240601)
    x = rng.uniform(-1.0, 1.0, size=(2, 3, cfg.image_size, cfg.image_size))
    return torch.from_numpy(x.astype(np.float32)).to(torch.float64)


def load_params(path, dtype):
    p = {}
    with safe_open(path, "pt") as f:
        for k in f.keys():
            p[k] = f.get_tensor(k).to(dtype).requires_grad_(True)
    return p


# ------------------------------------------------------------------ objectives


def targets_of(ids, loss):
    """Next-token targets: position t predicts ids[t+1] when token t+1 is a response token."""
    t = torch.full((len(ids),), -1, dtype=torch.long)
    for i in range(len(ids) - 1):
        if loss[i + 1]:
            t[i] = ids[i + 1]
    return t


def sft_loss(cfg, p, seqs, imgs):
    """sevo's SFT loss: the mean token cross-entropy over every response token of the batch."""
    logits, targets = [], []
    for ids, loss, image in seqs:
        _, lg = decode(cfg, p, torch.tensor(ids), imgs[image] if image >= 0 else None)
        logits.append(lg)
        targets.append(targets_of(ids, loss))
    return F.cross_entropy(torch.cat(logits), torch.cat(targets), ignore_index=-1, reduction="mean")


def sequence_logps(cfg, p, seqs, imgs):
    """log pi(y|x): the sum of the response tokens' log-probs, given image and prompt."""
    out = []
    for ids, loss, image in seqs:
        _, lg = decode(cfg, p, torch.tensor(ids), imgs[image] if image >= 0 else None)
        t = targets_of(ids, loss)
        lp = torch.log_softmax(lg, -1)
        keep = t >= 0
        out.append(lp[keep].gather(1, t[keep][:, None]).sum())
    return torch.stack(out)


def dpo_loss(pol, ref, beta, kind, eps, dpop=0.0):
    """Mean DPO loss over pairs; pol and ref are [pairs, 2] (chosen, rejected). dpop > 0:
    DPO-Positive (Pal et al. 2024), h minus dpop * max(0, ref_chosen - pol_chosen)."""
    h = (pol[:, 0] - ref[:, 0]) - (pol[:, 1] - ref[:, 1])
    h = h - dpop * torch.relu(ref[:, 0] - pol[:, 0])
    f = beta * h
    if kind == "sigmoid":
        return (-(1 - eps) * F.logsigmoid(f) - eps * F.logsigmoid(-f)).mean()
    if kind == "ipo":
        return ((h - 1 / (2 * beta)) ** 2).mean()
    if kind == "hinge":
        return torch.relu(1 - f).mean()
    raise ValueError(kind)


def sevo_lr_factor(step, total, warmup):
    """sevo's schedule (src/train/optim.c lr_at): linear warmup that reaches the peak at
    the end of step warmup-1 (the first step already trains at peak/warmup), then cosine
    to zero at total."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total - warmup <= 0:
        return 1.0
    progress = min((step - warmup) / (total - warmup), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


ADAMW = {"lr_peak": 1e-2, "weight_decay": 0.1, "max_grad_norm": 0.5, "total_steps": 5, "warmup_steps": 2,
         "steps": 3}
DPO_BETA, DPO_SMOOTHING = 0.5, 0.1
# log pi_ref = log pi_theta - offset: margins h = 3.0 (beta h = 1.5, past the hinge) and -1.2
DPO_REF_OFFSETS = [[1.0, -2.0], [-0.7, 0.5]]
DPO_KINDS = [("sigmoid", 0.0), ("ipo", 0.0), ("hinge", 0.0), ("sigmoid_ls", DPO_SMOOTHING), ("sigmoid_dpop", 0.0)]
# DPO-Positive's weight: pair 1's chosen is 0.7 below the reference, so its penalty is on
DPO_DPOP_LAMBDA = 3.0
GATE_LABELS = [1.0, 0.0, 1.0, 1.0, 0.0, 0.3]
REINFORCE = {"scores": [0.2, 0.55, 0.8, 0.9, 0.65], "decisions": [0, 0, 1, 1, 0], "tau": 0.7, "temperature": 0.1}
SCHEDULE = {"peak": 3e-4, "total": 10, "warmup": 3}


def decay_of(name, t):
    """Weight decay applies to matrices and embeddings, not to norms, biases or the
    vision position embeddings (sevo's parameter table)."""
    return t.dim() >= 2 and "position_embedding" not in name


def adamw_run(cfg, p, seqs, imgs):
    a = ADAMW
    names = sorted(p)
    groups = [{"params": [p[n] for n in names if decay_of(n, p[n])], "weight_decay": a["weight_decay"]},
              {"params": [p[n] for n in names if not decay_of(n, p[n])], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a["lr_peak"], betas=(0.9, 0.999), eps=1e-8, foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: sevo_lr_factor(s, a["total_steps"], a["warmup_steps"]))
    lrs, norms = [], []
    for _ in range(a["steps"]):
        opt.zero_grad()
        sft_loss(cfg, p, seqs, imgs).backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_([p[n] for n in names], a["max_grad_norm"])))
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs, norms


# ------------------------------------------------------------------ one checkpoint


def flat(seqs, field):
    return torch.tensor([v for s in seqs for v in s[field]], dtype=torch.float32)


def compute(ckpt, tok, dtype):
    """Every reference quantity of one checkpoint, in dtype. Returns a dict of tensors
    (inputs and outputs) and the first few hidden rows of the gate input."""
    cfg = Config(os.path.join(ckpt, "config.json"))
    p = load_params(os.path.join(ckpt, "model.safetensors"), dtype)
    imgs = images(cfg).to(dtype)
    sft = sequences(cfg, tok, "sft")
    dpo = sequences(cfg, tok, "dpo")
    out = {"images": imgs}
    for name, seqs in (("sft", sft), ("dpo", dpo)):
        out[f"{name}.ids"] = flat(seqs, 0)
        out[f"{name}.loss"] = flat(seqs, 1)
        out[f"{name}.lengths"] = torch.tensor([len(s[0]) for s in seqs], dtype=torch.float32)
        out[f"{name}.image"] = torch.tensor([s[2] for s in seqs], dtype=torch.float32)

    # forward of every SFT sequence: logits, final hidden states, log-prob of each next token
    logits, hidden, logp_all = [], [], []
    with torch.no_grad():
        for ids, _, image in sft:
            ids = torch.tensor(ids)
            h, lg = decode(cfg, p, ids, imgs[image] if image >= 0 else None)
            hidden.append(h)
            logits.append(lg)
            lp = torch.log_softmax(lg, -1)[:-1].gather(1, ids[1:, None])[:, 0]
            logp_all.append(torch.cat((lp, torch.zeros(1, dtype=dtype))))
    out["logits"], out["hidden"], out["logp_all"] = torch.cat(logits), torch.cat(hidden), torch.cat(logp_all)

    # SFT loss and gradients
    loss = sft_loss(cfg, p, sft, imgs)
    grads = torch.autograd.grad(loss, [p[n] for n in sorted(p)])
    out["sft.loss_value"] = loss.detach().reshape(1)
    for n, g in zip(sorted(p), grads):
        out[f"sft.grad.{n}"] = g

    # DPO: policy log-probs with the graph, reference log-probs as float32 constants
    pol = sequence_logps(cfg, p, dpo, imgs).view(2, 2)
    ref = (pol.detach() - torch.tensor(DPO_REF_OFFSETS, dtype=dtype)).to(torch.float32).to(dtype)
    out["dpo.policy_logp"] = pol.detach()
    out["dpo.ref_logp"] = ref
    out["dpo.beta"] = torch.tensor([DPO_BETA])
    for kind, eps in DPO_KINDS:
        pol_leaf = pol.detach().clone().requires_grad_(True)
        dpop = DPO_DPOP_LAMBDA if kind.endswith("_dpop") else 0.0
        loss_leaf = dpo_loss(pol_leaf, ref, DPO_BETA, kind.split("_")[0], eps, dpop)
        out[f"dpo.{kind}.loss"] = loss_leaf.detach().reshape(1)
        out[f"dpo.{kind}.grad_logp"] = torch.autograd.grad(loss_leaf, pol_leaf)[0]
    # through the full backward: the same backward serves every loss type (only the
    # per-sequence weights differ, checked above), so one type keeps the fixtures small
    loss_full = dpo_loss(pol, ref, DPO_BETA, "sigmoid", 0.0)
    for n, g in zip(sorted(p), torch.autograd.grad(loss_full, [p[n] for n in sorted(p)])):
        out[f"dpo.sigmoid.grad.{n}"] = g
    out["dpo.label_smoothing"] = torch.tensor([DPO_SMOOTHING])
    out["dpo.dpop_lambda"] = torch.tensor([DPO_DPOP_LAMBDA])

    # the HSR-EE gate on the final hidden states of sequence 0's last tokens
    gp = {}
    with safe_open(os.path.join(ckpt, "confidence_head.safetensors"), "pt") as f:
        for k in f.keys():
            gp[k] = f.get_tensor(k).to(dtype).requires_grad_(True)
    x = out["hidden"][len(sft[0][0]) - len(GATE_LABELS): len(sft[0][0])].detach().clone().requires_grad_(True)
    y = torch.tensor(GATE_LABELS, dtype=dtype)
    pre = F.linear(x, gp["confidence_head.0.weight"], gp["confidence_head.0.bias"])
    # a pre-activation within float32 noise of 0 would make the ReLU's choice arbitrary
    assert float(pre.detach().abs().min()) > 1e-3, "gate pre-activation too close to the ReLU kink"
    z = F.linear(torch.relu(pre), gp["confidence_head.3.weight"], gp["confidence_head.3.bias"])[:, 0]
    bce = F.binary_cross_entropy_with_logits(z, y)
    names = ["confidence_head.0.weight", "confidence_head.0.bias", "confidence_head.3.weight",
             "confidence_head.3.bias"]
    g = torch.autograd.grad(bce, [gp[n] for n in names] + [x])
    out["gate.x"], out["gate.labels"], out["gate.logits"] = x.detach(), y, z.detach()
    out["gate.bce"] = bce.detach().reshape(1)
    out["gate.bce_scores"] = F.binary_cross_entropy(torch.sigmoid(z).clamp(1e-7, 1 - 1e-7), y).detach().reshape(1)
    for short, gi in zip(("w1", "b1", "w2", "b2", "x"), g):
        out[f"gate.grad.{short}"] = gi
    r = REINFORCE
    theta = torch.tensor(math.log(r["tau"] / (1 - r["tau"])), dtype=dtype).to(torch.float32).to(dtype)
    theta.requires_grad_(True)
    s = torch.tensor(r["scores"], dtype=dtype)
    d = torch.tensor(r["decisions"], dtype=dtype)
    pexit = torch.sigmoid((s - torch.sigmoid(theta)) / r["temperature"])
    logp = (d * torch.log(pexit) + (1 - d) * torch.log1p(-pexit)).sum()
    out["reinforce.scores"], out["reinforce.decisions"] = s, d
    out["reinforce.theta"], out["reinforce.temperature"] = theta.detach().reshape(1), torch.tensor([r["temperature"]])
    out["reinforce.grad_theta"] = torch.autograd.grad(logp, theta)[0].reshape(1)

    # learning-rate schedule
    sc = SCHEDULE
    out["schedule.lr"] = torch.tensor([sc["peak"] * sevo_lr_factor(k, sc["total"], sc["warmup"])
                                       for k in range(sc["total"])])
    for k in ("peak", "total", "warmup"):
        out[f"schedule.{k}"] = torch.tensor([float(sc[k])])

    # last: AdamW moves the parameters
    lrs, norms = adamw_run(cfg, p, sft, imgs)
    out["adamw.lr"], out["adamw.grad_norm"] = torch.tensor(lrs), torch.tensor(norms)
    for k, v in ADAMW.items():
        out[f"adamw.{k}"] = torch.tensor([float(v)])
    for n in sorted(p):
        out[f"adamw.param.{n}"] = p[n].detach()
    return out, cfg, p, imgs, sft


# the logits tolerance of tests/parity/test_parity.c, for the sensitivity report
LOGITS_RTOL, LOGITS_ATOL = 1e-4, 1e-5


def sensitivity(cfg, p, imgs, seqs, logits):
    """How far deliberate implementation mistakes move the logits (float64), against the
    test's logits tolerance: each must be far above it for the parity test to catch it."""
    mutations = {
        "no RoPE": {"rope": "none"},
        "RoPE on interleaved pairs (GPT-J)": {"rope": "interleaved"},
        "GQA heads tiled (h % KVH)": {"gqa_tile": True},
        "decoder attention not causal": {"text_bidirectional": True},
        "vision attention causal": {"vision_causal": True},
        "image features in reverse order": {"image_reversed": True},
        "no vision position embeddings": {"no_position_embedding": True},
        "patch pixels read x-major": {"patch_transpose": True},
        "GELU erf <-> tanh swapped": {"swap_gelu": True},
        "plain SiLU computed as erf-GELU": {"silu_as_gelu": True},
    }
    lines = []
    with torch.no_grad():
        for label, mut in mutations.items():
            lg = torch.cat([decode(cfg, p, torch.tensor(ids), imgs[im] if im >= 0 else None, mut)[1]
                            for ids, _, im in seqs])
            d = (lg - logits).abs()
            if float(d.max()) > 0:  # a mutation that touches nothing in this model is not listed
                lines.append((label, float(d.max()), float((d / (LOGITS_ATOL + LOGITS_RTOL * logits.abs())).max())))
    return lines


def tokenizer_cases(tok, path):
    texts = [
        "is there a red circle in the image?",
        "Is There A RED circle IN the Image?",
        "what colour is the square?",
        "a red circle at top-left and a blue square at bottom-right.",
        "count the objects: there are 2 objects.",
        "the  square\tis\nblue .",
        "   leading and trailing spaces   ",
        "",
        "unknown words: purple hexagon!",
        "<bos><image><image> is there a red circle<perceive>a red circle<step>yes<eos>",
        "red<answer>blue <text> green<refine>",
        "<BOS> is not a control token; <bos>is",
        "don't stop_here 42 0123 2.5",
        "?!... ,;:",
        "caf\u00e9 na\u00efve \u00e9cole",
        "CAF\u00e9 Na\u00efve",
    ]
    import tokenizers

    # one case a line; ASCII only (non-ASCII text as \u escapes)
    cases = [json.dumps({"text": t, "ids": tok.encode(t).ids}, ensure_ascii=True) for t in texts]
    with open(path, "w", encoding="ascii") as f:
        f.write('{"tokenizer": "model_a/tokenizer.json",\n "tokenizers_version": "%s",\n "cases": [\n  %s\n ]}\n'
                % (tokenizers.__version__, ",\n  ".join(cases)))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_fixtures.py FIXTURE_DIR")
    # here, not at import: bench_torch.py imports the model from this file
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = sys.argv[1]
    tok = Tokenizer.from_file(os.path.join(root, "model_a", "tokenizer.json"))
    for variant in ("a", "b"):
        ckpt = os.path.join(root, f"model_{variant}")
        ref, cfg, p, imgs, sft = compute(ckpt, tok, torch.float64)
        ref32, *_ = compute(ckpt, tok, torch.float32)
        tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in ref.items()}
        save_file(tensors, os.path.join(root, f"reference_{variant}.safetensors"),
                  # one key: the library writes metadata from a hash map, in no fixed order
                  metadata={"producer": f"tools/reference/make_fixtures.py, torch {torch.__version__.split('+')[0]}, "
                                        "computed in float64"})
        print(f"model_{variant}: {len(tensors)} reference tensors")
        # torch's own float32 error, per group of items (the budget float32 leaves sevo)
        groups = {}
        for k, v in ref.items():
            if not v.is_floating_point() or k.startswith(("images", "sft.ids", "dpo.ids")):
                continue
            key = k.split(".grad.")[0] + ".grad" if k.startswith(("sft.grad.", "dpo.")) and ".grad." in k else \
                k.split(".param.")[0] + ".param" if ".param." in k else k
            if k.startswith("adamw.param.") and k.endswith("k_proj.bias"):
                key = "adamw.param k_proj.bias"  # zero true gradient: Adam steps on noise
            scale = float(v.detach().abs().max())
            err = float((ref32[k].detach().to(torch.float64) - v.detach()).abs().max())
            e, s = groups.get(key, (0.0, 0.0))
            groups[key] = (max(e, err), max(s, scale))
        for key in ("logits", "hidden", "logp_all", "sft.loss_value", "sft.grad", "adamw.grad_norm", "adamw.param",
                    "adamw.param k_proj.bias", "dpo.policy_logp", "dpo.sigmoid.grad", "gate.grad.x"):
            if key not in groups:
                continue
            e, s = groups[key]
            print(f"  torch float32 vs float64  {key:24s} max abs {e:.2e}  (max |value| {s:.2e})")
        pristine = {k: v.detach() for k, v in load_params(os.path.join(ckpt, "model.safetensors"),
                                                          torch.float64).items()}
        for label, delta, ratio in sensitivity(cfg, pristine, imgs, sft, ref["logits"]):
            print(f"  mistake: {label:36s} moves the logits by up to {delta:.2e} = {ratio:8.1f} x the tolerance")
    tokenizer_cases(tok, os.path.join(root, "tokenizer_cases.json"))
    print("wrote", os.path.join(root, "tokenizer_cases.json"))


if __name__ == "__main__":
    main()
