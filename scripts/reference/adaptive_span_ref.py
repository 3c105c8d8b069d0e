#!/usr/bin/python3
"""Independent PyTorch reference for adaptive-span / all-attention char models (txl tests).

A small re-implementation of facebookresearch/adaptive-span `TransformerSeq` (docs:
/work/shared/docs/MODELS.md §2, §7, §8.3, §9.2, §9.2b) without adaptive I/O and without
emb_dropout: untied `in_emb` (no sqrt(D) scaling) / `out_emb` (Linear with bias),
post-LN layers `h <- LN1(h + Attn(h, [cache; h]))`, `h <- LN2(h + FF(h))` (no FF and no
norm2 with persistent memory), bias-free query/key/value/out projections, one learned
relative position table `key_pe [1, Dh, S]` shared by all layers and heads (distance d
uses column S-d; a token never attends to itself), soft span mask applied after the
softmax and renormalised with +1e-8, trimming of keys/values/key_pe to a window that is a
multiple of 64 shorter than S, per-layer caches of the layer inputs (zero at the start,
zero-padded on the left when too short), joint softmax with persistent vectors
(key x sqrt(Dh), value x sqrt(N)). LayerNorm eps 1e-5. The softmax is taken over the
trimmed window only, exactly like the reference.

Internally batch-major ([B, M], [B, M, D], heads folded as b*H + n); every tensor
written to files is time-major ([T, B] tokens, caches [C, B, D]).

Parameter names = the reference state-dict keys without `module.`, without the
`mask_template` buffers and without the duplicate `persistent_memory.adaptive_span`
alias keys (§9.2). `save-random` writes the real checkpoint format instead:
`{'model': {'module.<key>': tensor, ... incl. buffers and alias keys}, 'iter_no': 0}`.

Subcommands (run with `/usr/bin/python3 scripts/reference/adaptive_span_ref.py CMD -h`):
  case         float64 reference case (weights, tokens, per-token NLL, caches, grads)
  save-random  torch.save of a randomly initialised model in the real checkpoint format
  eval         score a byte file with trainer.py full_eval semantics
  train-steps  N reference training steps (Adagrad with step clipping, warmup) from weights
  train        time-limited training on a byte file, then full-eval validation bpc
  bench-step   time forward + backward + Adagrad step
  selftest     formula checks against an independent loop-based implementation
Every option name accepts both `--foo_bar` and `--foo-bar`; the reference's own spellings
(--nlayers --hid-sz --inner-hid-sz --nheads --block-sz --batch-sz --lr-warmup
--grad-clip) are accepted as aliases.
"""
import argparse
import json
import math
import os
import random
import statistics
import sys
import time
import warnings
from collections import OrderedDict

TIMING_MODES = ("train", "bench-step")
if len(sys.argv) > 1 and sys.argv[1] in TIMING_MODES:
    if os.environ.get("OPENBLAS_NUM_THREADS", "1") != "1":
        sys.exit("adaptive_span_ref.py: error: timing modes need OPENBLAS_NUM_THREADS=1 "
                 f"(got {os.environ['OPENBLAS_NUM_THREADS']})")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

torch.set_num_threads(2)

LN_EPS = 1e-5
DTYPES = {"float64": torch.float64, "float32": torch.float32}
TRIM_GRANULARITY = 64  # trim lengths are multiples of this (adaptive_span.py get_trim_len)
CACHE_MARGIN = 64      # extra cache rows kept with --adapt_span_cache (get_cache_size)
RENORM_EPS = 1e-8      # attn / (sum + 1e-8) after the span mask
ADAGRAD_EPS = 1e-10    # added after the sqrt, and to the norm in the step clip


# ----------------------------------------------------------------------------- geometry
def unskew(x):
    """[N, M, W+M] -> [N, M, W] with out[n, i, j] = x[n, i, i+j]: row i of the query/key
    product (keys = W cached rows then the M block rows) re-indexed by j, distance W - j.
    Row-major trick: appending M zeros to the flattened rows makes the row stride W+M+1,
    so row i starts i elements further into the original row i."""
    n, m, k = x.shape
    w = k - m
    flat = F.pad(x.reshape(n, m * k), (0, m))
    return flat.reshape(n, m, k + 1)[:, :, :w]


def skew(a):
    """[N, M, W] -> [N, M, W+M] with out[n, i, k] = a[n, i, k-i] for 0 <= k-i < W, else 0
    (inverse of unskew; turns distance-indexed weights into key-indexed ones). Pad each
    row with M+1 zeros (stride W+M+1), flatten, drop the last M, view with stride W+M."""
    n, m, w = a.shape
    flat = F.pad(a, (0, m + 1)).reshape(n, m * (w + m + 1))[:, :m * (w + m)]
    return flat.reshape(n, m, w + m)


def mask_values(z, span, ramp, width):
    """Soft span mask for the last `width` distances (columns S-width..S-1 of the mask
    template linspace(1-S, 0, S) = arange(1-S, 1)). z: [H, 1, 1] ratios. Returns
    [H, 1, width]; column j <-> distance width - j. Distance form:
    m(d) = clamp((R + z S - (d - 1)) / R, 0, 1)."""
    template = torch.arange(1 - width, 1, dtype=z.dtype, device=z.device)
    return ((template + z * span) / ramp + 1).clamp(0, 1)


def max_span_size(z_max, span, ramp):
    """get_current_max_size: clamp(ceil(max z' * S) + R, 0, S); z_max a Python float."""
    return max(0, min(span, math.ceil(z_max * span) + ramp))


def trim_length(z_max, span, ramp):
    """get_trim_len: floor(min(S-1, S - max_size) / 64) * 64."""
    t = min(span - 1, span - max_span_size(z_max, span, ramp))
    return (t // TRIM_GRANULARITY) * TRIM_GRANULARITY


def cache_length(z_max, span, ramp, adapt_span, adapt_cache):
    """get_cache_size: min(S, S - trim_len + 64) with --adapt_span_cache, else S."""
    if adapt_span and adapt_cache:
        return min(span, span - trim_length(z_max, span, ramp) + CACHE_MARGIN)
    return span


# ----------------------------------------------------------------------------- model
class SpanMask(nn.Module):
    """AdaptiveMask: holds `current_val` [H, 1, 1] (mask_template is recomputed)."""

    def __init__(self, n_head, init):
        super().__init__()
        self.current_val = nn.Parameter(torch.zeros(n_head, 1, 1) + init)


class SpanModule(nn.Module):
    """AdaptiveSpan: the `_mask` child gives the reference key `adaptive_span._mask.*`."""

    def __init__(self, n_head, init):
        super().__init__()
        self._mask = SpanMask(n_head, init)


class PersistentVectors(nn.Module):
    """PersistentMemory: key [H, Dh, N] (used x sqrt(Dh)), val [H, N, Dh] (used x sqrt(N))."""

    def __init__(self, size, n_head, d_head):
        super().__init__()
        self.key = nn.Parameter(torch.randn(n_head, d_head, size) / math.sqrt(d_head))
        self.val = nn.Parameter(torch.randn(n_head, size, d_head) / math.sqrt(size))


class HeadAttention(nn.Module):
    """SeqAttention: per-head attention over [trimmed cache; block] with key_pe."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.drop = nn.Dropout(cfg["dropout"])
        if cfg["adapt_span"]:
            self.adaptive_span = SpanModule(cfg["n_head"], cfg["adapt_span_init"])
        if cfg["pers_mem_size"] > 0:
            self.persistent_memory = PersistentVectors(
                cfg["pers_mem_size"], cfg["n_head"], cfg["d_model"] // cfg["n_head"])

    # span geometry from the current z'
    def z_max(self):
        if not self.cfg["adapt_span"]:
            return 1.0
        return float(self.adaptive_span._mask.current_val.detach().max().item())

    def trim_len(self):
        if not self.cfg["adapt_span"]:
            return 0
        return trim_length(self.z_max(), self.cfg["attn_span"], self.cfg["adapt_span_ramp"])

    def cache_size(self):
        c = self.cfg
        return cache_length(self.z_max(), c["attn_span"], c["adapt_span_ramp"],
                            c["adapt_span"], c["adapt_span_cache"])

    def span_loss(self):
        c = self.cfg
        z = self.adaptive_span._mask.current_val
        return c["adapt_span_loss"] * c["attn_span"] * z.mean()

    def forward(self, q, k, v, key_pe):
        """q [BH, M, Dh]; k, v [BH, Lc+M, Dh]; key_pe [1, Dh, S]. Returns [BH, M, Dh]."""
        c = self.cfg
        H, S, Dh = c["n_head"], c["attn_span"], q.shape[-1]
        BH, M = q.shape[0], q.shape[1]
        if c["adapt_span"]:
            t = self.trim_len()
            lc = k.shape[1] - M
            drop = t - (S - lc)  # > 0: cache rows beyond the window; < 0: cache too short
            if drop > 0:
                k, v = k[:, drop:], v[:, drop:]
            elif drop < 0:
                k = F.pad(k, (0, 0, -drop, 0))
                v = F.pad(v, (0, 0, -drop, 0))
            if t > 0:
                key_pe = key_pe[:, :, t:]
        W = key_pe.shape[-1]
        if k.shape[1] != W + M:
            raise ValueError(f"keys {k.shape[1]} != window {W} + block {M} (cache too short?)")
        scores = unskew(torch.matmul(q, k.transpose(1, 2))) + torch.matmul(q, key_pe)
        pers_out = None
        if c["pers_mem_size"] > 0:
            pm = self.persistent_memory
            N = pm.key.shape[-1]
            qh = q.reshape(BH // H, H, M, Dh)
            s_p = torch.matmul(qh, (pm.key * math.sqrt(Dh)).unsqueeze(0)).reshape(BH, M, N)
            prob = F.softmax(torch.cat([scores, s_p], -1) / math.sqrt(Dh), dim=-1)
            a_c, a_p = prob[:, :, :W], prob[:, :, W:]
            if c["adapt_span"]:
                m = mask_values(self.adaptive_span._mask.current_val, S,
                                c["adapt_span_ramp"], W)
                a_c = (a_c.reshape(BH // H, H, M, W) * m).reshape(BH, M, W)
                joint = torch.cat([a_c, a_p], -1)
                joint = joint / (joint.sum(-1, keepdim=True) + RENORM_EPS)
                a_c, a_p = joint[:, :, :W], joint[:, :, W:]
            a_p = self.drop(a_p)
            pers_out = torch.matmul(a_p.reshape(BH // H, H, M, N),
                                    (pm.val * math.sqrt(N)).unsqueeze(0)).reshape(BH, M, Dh)
        else:
            a_c = F.softmax(scores / math.sqrt(Dh), dim=-1)
            if c["adapt_span"]:
                m = mask_values(self.adaptive_span._mask.current_val, S,
                                c["adapt_span_ramp"], W)
                a_c = (a_c.reshape(BH // H, H, M, W) * m).reshape(BH, M, W)
                a_c = a_c / (a_c.sum(-1, keepdim=True) + RENORM_EPS)
        a_c = self.drop(a_c)
        out = torch.matmul(skew(a_c), v)
        return out if pers_out is None else out + pers_out


class MultiHeadAttention(nn.Module):
    """MultiHeadSeqAttention; child registration order = the reference's key order."""

    def __init__(self, cfg):
        super().__init__()
        D = cfg["d_model"]
        self.n_head = cfg["n_head"]
        self.attn = HeadAttention(cfg)
        self.proj_query = nn.Linear(D, D, bias=False)
        self.proj_out = nn.Linear(D, D, bias=False)
        self.proj_val = nn.Linear(D, D, bias=False)
        self.proj_key = nn.Linear(D, D, bias=False)

    def heads(self, x):  # [B, K, D] -> [B*H, K, Dh]
        B, K, D = x.shape
        H = self.n_head
        return x.reshape(B, K, H, D // H).transpose(1, 2).reshape(B * H, K, D // H)

    def forward(self, h, full, key_pe):
        B, M, D = h.shape
        out = self.attn(self.heads(self.proj_query(h)), self.heads(self.proj_key(full)),
                        self.heads(self.proj_val(full)), key_pe)
        out = out.reshape(B, self.n_head, M, D // self.n_head).transpose(1, 2).reshape(B, M, D)
        return self.proj_out(out)


class FeedForward(nn.Module):
    def __init__(self, d_model, d_inner, dropout):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_inner)
        self.fc2 = nn.Linear(d_inner, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, h):
        return self.fc2(self.drop(F.relu(self.fc1(h))))


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D = cfg["d_model"]
        self.attn = MultiHeadAttention(cfg)
        self.norm1 = nn.LayerNorm(D, eps=LN_EPS)
        self.has_ff = cfg["pers_mem_size"] == 0
        if self.has_ff:
            self.ff = FeedForward(D, cfg["d_inner"], cfg["dropout"])
            self.norm2 = nn.LayerNorm(D, eps=LN_EPS)

    def forward(self, h, cache, key_pe):
        h = self.norm1(h + self.attn(h, torch.cat([cache, h], 1), key_pe))
        if self.has_ff:
            h = self.norm2(h + self.ff(h))
        return h


class AdaptiveSpanLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, H = cfg["d_model"], cfg["n_head"]
        if D % H:
            raise ValueError(f"d_model {D} is not a multiple of n_head {H}")
        self.cfg = dict(cfg)
        self.in_emb = nn.Embedding(cfg["vocab"], D)
        self.out_emb = nn.Linear(D, cfg["vocab"])
        self.key_pe = nn.Parameter(torch.randn(1, D // H, cfg["attn_span"]))
        self.layers = nn.ModuleList([Layer(self.cfg) for _ in range(cfg["n_layer"])])

    @property
    def dtype(self):
        return self.key_pe.dtype

    def seq_attn(self, l):
        return self.layers[l].attn.attn

    def cache_sizes(self):
        return [self.seq_attn(l).cache_size() for l in range(len(self.layers))]

    def trim_lens(self):
        return [self.seq_attn(l).trim_len() for l in range(len(self.layers))]

    def zero_caches(self, batch):
        D = self.cfg["d_model"]
        return [torch.zeros(batch, cs, D, dtype=self.dtype, device=self.key_pe.device)
                for cs in self.cache_sizes()]

    def span_loss(self):
        """Sum over layers of adapt_span_loss * S * mean(z') (0 without adaptive span)."""
        if not self.cfg["adapt_span"]:
            return torch.zeros((), dtype=self.dtype)
        return sum(self.seq_attn(l).span_loss() for l in range(len(self.layers)))

    def clamp_spans(self):
        if self.cfg["adapt_span"]:
            with torch.no_grad():
                for l in range(len(self.layers)):
                    self.seq_attn(l).adaptive_span._mask.current_val.clamp_(0, 1)

    def forward(self, x, caches):
        """x [B, M] long; caches: per layer [B, Lc, D]. Returns (log-probs [B, M, V],
        new caches: per layer the last cache_size rows of [cache; layer input], detached;
        the cache size is taken from the spans at the start of this forward)."""
        h = self.in_emb(x)
        new_caches = []
        for layer, cache in zip(self.layers, caches):
            cs = layer.attn.attn.cache_size()
            new_caches.append(torch.cat([cache, h], 1)[:, -cs:].detach())
            h = layer(h, cache, self.key_pe)
        return F.log_softmax(self.out_emb(h), dim=-1), new_caches

    def nll(self, x, y, caches):
        """Per-token NLL [B, M] and new caches."""
        logp, caches = self(x, caches)
        return -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1), caches


def model_config(a, vocab=None):
    return dict(
        vocab=vocab if vocab is not None else a.vocab, n_layer=a.n_layer, d_model=a.d_model,
        d_inner=a.d_inner if a.pers_mem_size == 0 else 0, n_head=a.n_head,
        attn_span=a.attn_span, tgt_len=a.tgt_len, adapt_span=bool(a.adapt_span),
        adapt_span_ramp=a.adapt_span_ramp, adapt_span_init=a.adapt_span_init,
        adapt_span_loss=a.adapt_span_loss, adapt_span_cache=bool(a.adapt_span_cache),
        pers_mem_size=a.pers_mem_size, dropout=a.dropout)


def build_model(a, vocab=None):
    return AdaptiveSpanLM(model_config(a, vocab))


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def param_count_formula(n_layer, d_model, d_inner, n_head, span, vocab, pers_mem_size=0,
                        adapt_span=True):
    """MODELS.md §9.2b."""
    D, Fi, H, N = d_model, d_inner, n_head, pers_mem_size
    hz = H if adapt_span else 0
    if N > 0:
        per_layer = 4 * D * D + 2 * D * N + 2 * D + hz
    else:
        per_layer = 4 * D * D + 2 * D * Fi + Fi + D + 4 * D + hz
    return n_layer * per_layer + 2 * vocab * D + vocab + (D // H) * span


def init_random(model, std, span_hi, generator):
    """Test-case init: every parameter N(0, std), LayerNorm weights N(1, std),
    current_val ~ U(0, span_hi)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("current_val"):
                p.uniform_(0.0, span_hi, generator=generator)
            elif ".norm" in name and name.endswith(".weight"):
                p.normal_(1.0, std, generator=generator)
            else:
                p.normal_(0.0, std, generator=generator)


# ----------------------------------------------------------------------------- state dicts
def layer_template(span, dtype):
    return torch.linspace(1 - span, 0, steps=span).to(dtype)


def reference_state_dict(model):
    """The real checkpoint's model state dict ('module.' prefix, mask_template buffers,
    persistent_memory.adaptive_span alias keys sharing the layer's current_val), in the
    reference's key order."""
    cfg = model.cfg
    S = cfg["attn_span"]
    out = OrderedDict()
    for name, p in model.named_parameters():
        t = p.detach()
        out["module." + name] = t
        if name.endswith("attn.attn.adaptive_span._mask.current_val"):
            buf = "module." + name[:-len("current_val")] + "mask_template"
            out[buf] = layer_template(S, t.dtype)
        if name.endswith("attn.attn.persistent_memory.val") and cfg["adapt_span"]:
            layer_prefix = name[:-len("persistent_memory.val")]
            z = dict(model.named_parameters())[layer_prefix + "adaptive_span._mask.current_val"]
            alias = "module." + name[:-len("val")] + "adaptive_span._mask."
            out[alias + "current_val"] = z.detach()
            out[alias + "mask_template"] = layer_template(S, t.dtype)
    return out


def fail(msg):
    sys.exit(f"adaptive_span_ref.py: error: {msg}")


def load_state(path):
    """torch.load a checkpoint ({'model': ...}), a state dict, or a module; strips
    'module.'; verifies and drops mask_template buffers and the alias keys."""
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        fail(f"{path}: not a state dict")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    state = OrderedDict()
    for k, v in obj.items():
        if k.endswith("._mask.mask_template"):
            want = torch.linspace(1 - v.numel(), 0, steps=v.numel()).to(v.dtype)
            if v.dim() != 1 or not torch.equal(v, want):
                fail(f"{path}: {k} is not linspace(1-S, 0, S)")
            continue
        if ".persistent_memory.adaptive_span." in k:
            own = k.replace(".persistent_memory.adaptive_span.", ".adaptive_span.")
            if own not in obj or not torch.equal(obj[own], v):
                fail(f"{path}: alias {k} differs from {own}")
            continue
        state[k] = v
    return state


def infer_arch(a, state):
    """Fills architecture options from the state dict (checks those given)."""
    if "key_pe" not in state or "in_emb.weight" not in state:
        fail("state dict has no key_pe / in_emb.weight: not an adaptive-span TransformerSeq")
    dh, span = state["key_pe"].shape[1], state["key_pe"].shape[2]
    vocab, d_model = state["in_emb.weight"].shape
    pk = state.get("layers.0.attn.attn.persistent_memory.key")
    fc1 = state.get("layers.0.ff.fc1.weight")
    found = {
        "n_layer": 1 + max(int(k.split(".")[1]) for k in state if k.startswith("layers.")),
        "d_model": d_model, "n_head": d_model // dh, "attn_span": span, "vocab": vocab,
        "pers_mem_size": int(pk.shape[-1]) if pk is not None else 0,
        "d_inner": int(fc1.shape[0]) if fc1 is not None else 0,
    }
    for k, v in found.items():
        given = getattr(a, k)
        if given is None or (k == "d_inner" and found["pers_mem_size"] > 0):
            setattr(a, k, int(v))
        elif int(given) != int(v):
            fail(f"--{k} {given} does not match the state dict ({v})")
    has_span = "layers.0.attn.attn.adaptive_span._mask.current_val" in state
    if a.adapt_span and not has_span:
        fail("--adapt_span given but the state dict has no adaptive_span current_val")
    a.adapt_span = has_span


def model_from_state(a, state, dtype):
    infer_arch(a, state)
    model = build_model(a)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        fail(f"state dict mismatch: missing {list(missing)}, unexpected {list(unexpected)}")
    return model.to(dtype)


# ----------------------------------------------------------------------------- data
def read_bytes(path):
    with open(path, "rb") as f:
        raw = f.read()
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).astype(np.int64))


class BlockStream:
    """Time-major batching (LMOrderedIterator / adaptive-span _batchify, §8.3):
    n = len // B, data[:n*B].view(B, n).t() -> [n, B] (column b = tokens b*n .. b*n+n-1).
    Block i (0-based): input rows [i*M, i*M+M), targets rows [i*M+1, i*M+M+1).
    Only whole blocks: n_blocks = floor((n - 1) / M) (= the blocks trainer.py visits:
    it stops once the next start p satisfies p >= n - M)."""

    def __init__(self, tokens, bsz, block):
        self.bsz, self.block = bsz, block
        self.n = tokens.numel() // bsz
        self.n_blocks = (self.n - 1) // block
        if self.n_blocks < 1:
            raise ValueError(f"stream of {tokens.numel()} tokens is too short for batch {bsz} "
                             f"and block {block} (needs at least {bsz * (block + 1)})")
        self.data = tokens[:self.n * bsz].reshape(bsz, self.n).t().contiguous()

    def block_at(self, p):
        """Time-major [M, B] input/target starting at row p."""
        M = self.block
        return self.data[p:p + M], self.data[p + 1:p + M + 1]

    def __iter__(self):
        for i in range(self.n_blocks):
            yield self.block_at(i * self.block)


def full_eval(model, stream):
    """trainer.py full_eval: eval mode, zero caches [B, cache_size, D], blocks at
    p = 0, M, 2M, ... while p < n - M (p = 0 always), loss = mean over blocks of the
    block's mean NLL (no span loss). Returns (mean nll, tokens scored)."""
    was_training = model.training
    model.eval()
    caches = model.zero_caches(stream.bsz)
    total, blocks = 0.0, 0
    with torch.no_grad():
        for x, y in stream:
            nll, caches = model.nll(x.t(), y.t(), caches)
            total += nll.mean().item()
            blocks += 1
    model.train(was_training)
    return total / blocks, blocks * stream.block * stream.bsz


# ----------------------------------------------------------------------------- optimiser
class AdagradStepClip:
    """AdagradWithGradClip (lr_decay 0, weight decay 0, accumulator 0): per parameter
    tensor with a gradient: clr = lr; if clip > 0 and ||g|| > clip: clr *= clip/(||g||+1e-10);
    sum += g*g (raw g); p -= clr * g / (sqrt(sum) + 1e-10)."""

    def __init__(self, params, clip):
        self.params = [p for p in params if p.requires_grad]
        self.clip = clip
        self.sums = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            if p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self, lr):
        for p, acc in zip(self.params, self.sums):
            if p.grad is None:
                continue
            g = p.grad
            clr = lr
            if self.clip > 0:
                norm = g.norm(2).item()
                if norm > self.clip:
                    clr *= self.clip / (norm + ADAGRAD_EPS)
            acc.addcmul_(g, g)
            p.addcdiv_(g, acc.sqrt().add_(ADAGRAD_EPS), value=-clr)


def lr_at(k, lr0, warmup):
    """LambdaLR(min(1, s/warmup)) stepped before update k (1-based); warmup 0: constant."""
    if warmup > 0:
        return lr0 * min(1.0, k / warmup)
    return lr0


def train_update(model, opt, x, y, caches, lr, bf16=False):
    """One trainer.py step: zero grads, loss = nll mean + span loss (summed over layers),
    backward, Adagrad step with lr, clamp z' to [0, 1].
    Returns (nll mean, span loss, new caches)."""
    opt.zero_grad()
    if bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logp, caches = model(x, caches)
        nll = -logp.float().gather(-1, y.unsqueeze(-1)).squeeze(-1)
    else:
        nll, caches = model.nll(x, y, caches)
    loss = nll.mean()
    span = model.span_loss()
    (loss + span).backward()
    opt.step(lr)
    model.clamp_spans()
    return loss.item(), float(span), caches


# ----------------------------------------------------------------------------- commands
def cmd_case(a):
    dtype = DTYPES[a.dtype]
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    model = build_model(a).to(dtype)
    init_random(model, a.init_std, a.span_init_hi, g)
    model.eval()
    M, B, S = a.tgt_len, a.batch, a.segments
    stream = torch.randint(0, a.vocab, (S * M + 1, B), generator=g)
    names = [n for n, _ in model.named_parameters()]
    out = OrderedDict()
    for n, p in model.named_parameters():
        out[f"param/{n}"] = p.detach().clone()
    caches = model.zero_caches(B)
    trim, csize = model.trim_lens(), model.cache_sizes()
    J = 0.0
    for s in range(S):
        data, target = stream[s * M:(s + 1) * M], stream[s * M + 1:(s + 1) * M + 1]
        nll, caches = model.nll(data.t(), target.t(), caches)
        span = model.span_loss()
        J = J + nll.mean() + span
        out[f"input/{s}"] = data.clone()
        out[f"target/{s}"] = target.clone()
        out[f"loss/{s}"] = nll.detach().t().contiguous()
        out[f"span_loss/{s}"] = span.detach().clone().reshape(1)
        for l, c in enumerate(caches):
            out[f"cache/{s}/{l}"] = c.transpose(0, 1).contiguous()
    J.backward()
    for n, p in model.named_parameters():
        out[f"grad/{n}"] = p.grad.detach().clone()
    os.makedirs(a.out, exist_ok=True)
    safetensors_io.save_file(os.path.join(a.out, "case.safetensors"), out,
                             metadata={"format": "txl-adaptive-span-case", "version": "1"})
    info = {k: v for k, v in vars(a).items() if k not in ("func", "out")}
    info.update({
        "model": "adaptive-span (facebookresearch TransformerSeq, no adaptive I/O)",
        "params": names,
        "trim_len": trim,
        "cache_size": csize,
        "window": [a.attn_span - t for t in trim],
        "J": ("sum over blocks s of (loss/<s>.mean() + span_loss/<s>); span_loss = "
              "sum over layers of adapt_span_loss * attn_span * mean(current_val); "
              "caches detached, zero [B, cache_size, D] at block 0; eval mode"),
        "objective_J": J.item(),
        "layer_norm_eps": LN_EPS,
        "renorm_eps": RENORM_EPS,
        "softmax": "over the trimmed window (S - trim_len distances) [+ persistent vectors]",
        "layout": "tokens [T, B], loss [T, B], cache/<s>/<l> [cache_size, B, D] (time-major)",
        "torch_version": torch.__version__,
    })
    with open(os.path.join(a.out, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps({"out": a.out, "J": J.item(), "tensors": len(out),
                      "trim_len": trim, "cache_size": csize}))


def cmd_save_random(a):
    torch.manual_seed(a.seed)
    model = build_model(a)  # PyTorch default init, key_pe N(0,1), z' = adapt_span_init
    if a.init == "normal":
        init_random(model, a.init_std, a.span_init_hi, None)
        if a.adapt_span and not a.span_init_random:
            with torch.no_grad():
                for l in range(a.n_layer):
                    model.seq_attn(l).adaptive_span._mask.current_val.fill_(a.adapt_span_init)
    if a.span_init_random and a.adapt_span:
        with torch.no_grad():
            for l in range(a.n_layer):
                model.seq_attn(l).adaptive_span._mask.current_val.uniform_(0.0, 0.5)
    model.to(DTYPES[a.dtype])
    torch.save({"iter_no": 0, "model": reference_state_dict(model)}, a.out)
    print(json.dumps({"out": a.out, "params": count_params(model),
                      "trim_len": model.trim_lens(), "cache_size": model.cache_sizes()}))


def check_vocab(tokens, model):
    if int(tokens.max()) >= model.cfg["vocab"]:
        fail(f"byte {int(tokens.max())} does not fit the vocabulary of {model.cfg['vocab']}")


def cmd_eval(a):
    model = model_from_state(a, load_state(a.state), DTYPES[a.dtype])
    tokens = read_bytes(a.data)
    check_vocab(tokens, model)
    stream = BlockStream(tokens, a.batch, a.tgt_len)
    nll, n = full_eval(model, stream)
    print(json.dumps({"nll": nll, "bpc": nll / math.log(2), "tokens": n,
                      "blocks": stream.n_blocks, "cache_size": model.cache_sizes(),
                      "trim_len": model.trim_lens()}))


def cmd_train_steps(a):
    model = model_from_state(a, load_state(a.state), DTYPES[a.dtype])
    model.train()  # dropout is whatever --dropout says (default 0)
    tokens = read_bytes(a.data)
    check_vocab(tokens, model)
    stream = BlockStream(tokens, a.batch, a.tgt_len)
    opt = AdagradStepClip(model.parameters(), a.clip)
    caches = model.zero_caches(a.batch)
    losses, spans, lrs = [], [], []
    for k in range(1, a.steps + 1):
        i = (k - 1) % stream.n_blocks
        if i == 0 and k > 1:  # past the end: restart at row 0 with zero caches
            caches = model.zero_caches(a.batch)
        x, y = stream.block_at(i * a.tgt_len)
        lr = lr_at(k, a.lr, a.warmup)
        loss, span, caches = train_update(model, opt, x.t(), y.t(), caches, lr)
        losses.append(loss)
        spans.append(span)
        lrs.append(lr)
    if a.save_state:
        torch.save({"iter_no": 0, "model": reference_state_dict(model)}, a.save_state)
    print(json.dumps({"losses": losses, "span_losses": spans, "lrs": lrs,
                      "cache_size": model.cache_sizes(), "trim_len": model.trim_lens(),
                      "current_val": [model.seq_attn(l).adaptive_span._mask.current_val
                                      .detach().flatten().tolist()
                                      for l in range(a.n_layer)] if a.adapt_span else []}))


def cmd_train(a):
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    raw = read_bytes(a.data)
    n_train = raw.numel() * 9 // 10
    train_raw, val_raw = raw[:n_train], raw[n_train:]
    symbols = sorted(set(train_raw.tolist()))
    index = torch.full((256,), -1, dtype=torch.long)
    index[torch.tensor(symbols)] = torch.arange(len(symbols))
    train_tok = index[train_raw]
    val_tok = index[val_raw]
    oov = int((val_tok < 0).sum())
    val_tok = val_tok[val_tok >= 0]  # bytes unseen in training are dropped from validation
    model = build_model(a, vocab=len(symbols)).to(DTYPES[a.dtype])
    model.train()
    opt = AdagradStepClip(model.parameters(), a.clip)
    stream = BlockStream(train_tok, a.batch, a.tgt_len)
    M, n = a.tgt_len, stream.n
    print(f"train: {n_train} bytes, vocab {len(symbols)}, params {count_params(model)}, "
          f"{stream.n_blocks} blocks/pass", file=sys.stderr)
    caches, pos = model.zero_caches(a.batch), 0
    steps, tokens, losses = 0, 0, []
    t0 = time.perf_counter()
    while steps < a.max_step:
        x, y = stream.block_at(pos)
        lr = lr_at(steps + 1, a.lr, a.warmup)
        loss, span, caches = train_update(model, opt, x.t(), y.t(), caches, lr, a.bf16)
        steps += 1
        tokens += M * a.batch
        losses.append(loss)
        pos += M
        if pos >= n - M:  # trainer.py: random restart offset, caches zeroed
            pos = rng.randrange(M)
            caches = [torch.zeros_like(c) for c in caches]
        elapsed = time.perf_counter() - t0
        if steps % a.log_interval == 0:
            recent = sum(losses[-a.log_interval:]) / len(losses[-a.log_interval:])
            spans = [model.seq_attn(l).z_max() * a.attn_span for l in range(a.n_layer)]
            print(f"step {steps} lr {lr:.3g} loss {recent:.4f} bpc {recent / math.log(2):.4f} "
                  f"span_max {max(spans):.0f} {elapsed:.1f}s {tokens / elapsed:.0f} tok/s",
                  file=sys.stderr)
        if elapsed >= a.seconds:
            break
    train_seconds = time.perf_counter() - t0
    eval_len = a.eval_tgt_len or a.tgt_len
    val_loss, val_tokens = full_eval(model, BlockStream(val_tok, a.eval_batch, eval_len))
    if a.save:
        torch.save({"iter_no": 0, "model": reference_state_dict(model)}, a.save)
    print(json.dumps({
        "val_loss": val_loss, "val_bpc": val_loss / math.log(2), "steps": steps,
        "train_tokens_per_s": tokens / train_seconds, "train_seconds": train_seconds,
        "val_tokens": val_tokens, "val_oov_dropped": oov, "vocab_size": len(symbols),
        "params": count_params(model),
        "final_train_loss": sum(losses[-a.log_interval:]) / len(losses[-a.log_interval:]),
    }))


def cmd_bench_step(a):
    torch.manual_seed(a.seed)
    model = build_model(a)
    model.train()
    opt = AdagradStepClip(model.parameters(), a.clip)
    M, B = a.tgt_len, a.batch
    x = torch.randint(0, a.vocab, (B, M))
    y = torch.randint(0, a.vocab, (B, M))
    caches = model.zero_caches(B)

    def step():
        train_update(model, opt, x, y, caches, a.lr, a.bf16)

    for _ in range(a.warmup_iters):
        step()
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    print(json.dumps({"ms_per_step": ms, "tokens_per_s": M * B / (ms / 1e3),
                      "repeats": a.repeats, "bf16": a.bf16, "threads": torch.get_num_threads(),
                      "mem_len": int(caches[0].shape[1]), "tgt_len": M, "batch": B,
                      "params": count_params(model)}))


# ----------------------------------------------------------------------------- selftest
def loop_forward(P, cfg, blocks, z_override=None):
    """Independent numpy float64 forward from the MODELS.md §2 formulas: for each
    (b, head, i) the scores over distances d = 1..W (W = S - trim_len), key row
    = [zero pad; cache; block][W + i - d] taken from an explicitly assembled window,
    position vector key_pe[:, S - d], m(d) in distance form, explicit joint softmax with
    persistent vectors. No skew/unskew. blocks: [(x [B, M], y [B, M])] batch-major.
    z_override: optional {block index: list of per-layer z' arrays} applied before that
    block (to exercise short caches). Returns [(nll [B, M], caches)] per block."""
    L, H, D = cfg["n_layer"], cfg["n_head"], cfg["d_model"]
    S, R, N = cfg["attn_span"], cfg["adapt_span_ramp"], cfg["pers_mem_size"]
    Dh = D // H
    E, Wout, bout, Kpe = P["in_emb.weight"], P["out_emb.weight"], P["out_emb.bias"], P["key_pe"][0]

    def ln(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + LN_EPS) * w + b

    def zs(l):
        return P[f"layers.{l}.attn.attn.adaptive_span._mask.current_val"].reshape(H)

    def geometry(l):
        if not cfg["adapt_span"]:
            return 0, S
        zmax = float(zs(l).max())
        size = min(S, max(0, math.ceil(zmax * S) + R))
        # independent form of the trim: largest multiple of 64 that is <= S - size and < S
        t = 0
        while t + TRIM_GRANULARITY <= S - size and t + TRIM_GRANULARITY <= S - 1:
            t += TRIM_GRANULARITY
        cs = min(S, S - t + CACHE_MARGIN) if cfg["adapt_span_cache"] else S
        return t, cs

    B = blocks[0][0].shape[0]
    caches = [np.zeros((B, geometry(l)[1], D)) for l in range(L)]
    results = []
    for bi, (x, y) in enumerate(blocks):
        if z_override and bi in z_override:
            for l in range(L):
                P[f"layers.{l}.attn.attn.adaptive_span._mask.current_val"] = \
                    np.asarray(z_override[bi][l], dtype=np.float64).reshape(H, 1, 1)
        M = x.shape[1]
        h = E[x]
        new_caches = []
        for l in range(L):
            pre = f"layers.{l}."
            t, cs = geometry(l)
            W = S - t
            new_caches.append(np.concatenate([caches[l], h], 1)[:, -cs:])
            ctx = np.concatenate([caches[l], h], 1)
            if ctx.shape[1] < W + M:
                ctx = np.concatenate([np.zeros((B, W + M - ctx.shape[1], D)), ctx], 1)
            ctx = ctx[:, ctx.shape[1] - (W + M):]
            Wq = P[pre + "attn.proj_query.weight"]
            Wk = P[pre + "attn.proj_key.weight"]
            Wv = P[pre + "attn.proj_val.weight"]
            Wo = P[pre + "attn.proj_out.weight"]
            att = np.zeros((B, M, D))
            d = np.arange(1, W + 1)
            for n in range(H):
                rows = slice(n * Dh, (n + 1) * Dh)
                if cfg["adapt_span"]:
                    z = zs(l)[n]
                    m = np.clip((R + z * S - (d - 1)) / R, 0.0, 1.0)
                for b in range(B):
                    keys = ctx[b] @ Wk[rows].T   # [W+M, Dh]
                    vals = ctx[b] @ Wv[rows].T
                    for i in range(M):
                        q = Wq[rows] @ h[b, i]
                        pos = W + i - d           # key rows at distances d
                        s = (keys[pos] + Kpe[:, S - d].T) @ q
                        if N > 0:
                            pk = P[pre + "attn.attn.persistent_memory.key"][n] * math.sqrt(Dh)
                            pv = P[pre + "attn.attn.persistent_memory.val"][n] * math.sqrt(N)
                            s = np.concatenate([s, q @ pk])
                        s = s / math.sqrt(Dh)
                        e = np.exp(s - s.max())
                        a_ = e / e.sum()
                        if cfg["adapt_span"]:
                            a_[:W] = a_[:W] * m
                            a_ = a_ / (a_.sum() + RENORM_EPS)
                        o = a_[:W] @ vals[pos]
                        if N > 0:
                            o = o + a_[W:] @ pv
                        att[b, i, rows] = o
            h1 = ln(h + att @ Wo.T, P[pre + "norm1.weight"], P[pre + "norm1.bias"])
            if N == 0:
                f = np.maximum(h1 @ P[pre + "ff.fc1.weight"].T + P[pre + "ff.fc1.bias"], 0.0)
                f = f @ P[pre + "ff.fc2.weight"].T + P[pre + "ff.fc2.bias"]
                h1 = ln(h1 + f, P[pre + "norm2.weight"], P[pre + "norm2.bias"])
            h = h1
        logits = h @ Wout.T + bout
        mx = logits.max(-1, keepdims=True)
        logz = mx[..., 0] + np.log(np.exp(logits - mx).sum(-1))
        nll = logz - np.take_along_axis(logits, y[..., None], -1)[..., 0]
        caches = new_caches
        results.append((nll, [c.copy() for c in caches]))
    return results


def expected_keys(L, adapt, pers):
    """Reference state-dict key order (models.py module tree), real checkpoint format."""
    keys = ["key_pe", "in_emb.weight", "out_emb.weight", "out_emb.bias"]
    for l in range(L):
        p = f"layers.{l}."
        if adapt:
            keys += [p + "attn.attn.adaptive_span._mask.current_val",
                     p + "attn.attn.adaptive_span._mask.mask_template"]
        if pers:
            keys += [p + "attn.attn.persistent_memory.key", p + "attn.attn.persistent_memory.val"]
            if adapt:
                keys += [p + "attn.attn.persistent_memory.adaptive_span._mask.current_val",
                         p + "attn.attn.persistent_memory.adaptive_span._mask.mask_template"]
        keys += [p + "attn.proj_query.weight", p + "attn.proj_out.weight",
                 p + "attn.proj_val.weight", p + "attn.proj_key.weight",
                 p + "norm1.weight", p + "norm1.bias"]
        if not pers:
            keys += [p + "ff.fc1.weight", p + "ff.fc1.bias", p + "ff.fc2.weight",
                     p + "ff.fc2.bias", p + "norm2.weight", p + "norm2.bias"]
    return keys


def cmd_selftest(a):
    ok = True
    report = {}

    # 1. unskew / skew index semantics.
    worst = 0.0
    for M in range(1, 6):
        for W in range(1, 7):
            x = torch.arange(1, 2 * M * (W + M) + 1, dtype=torch.float64).reshape(2, M, W + M)
            u = unskew(x)
            a_ = torch.arange(1, 2 * M * W + 1, dtype=torch.float64).reshape(2, M, W)
            s = skew(a_)
            for n in range(2):
                for i in range(M):
                    for j in range(W):
                        worst = max(worst, abs(float(u[n, i, j] - x[n, i, i + j])))
                    for k in range(W + M):
                        want = float(a_[n, i, k - i]) if 0 <= k - i < W else 0.0
                        worst = max(worst, abs(float(s[n, i, k]) - want))
            worst = max(worst, float((unskew(skew(a_)) - a_).abs().max()))
    report["skew_unskew_index_max_err"] = worst
    ok &= worst == 0

    # 2. mask: template form == distance form; corner values.
    worst = 0.0
    for S, R in [(192, 32), (64, 8), (100, 16)]:
        for zv in [0.0, 0.1, 0.37, 0.5, 1.0]:
            z = torch.full((1, 1, 1), zv, dtype=torch.float64)
            for W in (S, S - 1, 17):
                m = mask_values(z, S, R, W)[0, 0]
                for j in range(W):
                    d = W - j
                    want = min(1.0, max(0.0, (R + zv * S - (d - 1)) / R))
                    worst = max(worst, abs(float(m[j]) - want))
    report["mask_formula_max_err"] = worst
    zc, Sc, Rc = 0.25, 128, 32
    mm = mask_values(torch.full((1, 1, 1), zc, dtype=torch.float64), Sc, Rc, Sc)[0, 0]
    corner = [float(mm[Sc - d]) for d in (1, int(zc * Sc) + 1, int(zc * Sc) + Rc + 1)]
    report["mask_corners_d1_zS1_zSR1"] = corner
    ok &= worst < 1e-15 and corner == [1.0, 1.0, 0.0]

    # 3. trim / cache formulas: known values + invariants over a grid.
    known = [((0.0, 8192, 32), 8128, 128), ((0.4, 192, 32), 64, 192), ((0.0, 192, 32), 128, 128),
             ((0.9, 192, 32), 0, 192), ((1.0, 64, 32), 0, 64), ((0.0, 1024, 32), 960, 128)]
    bad = []
    for (z, S, R), t_want, c_want in known:
        t, c = trim_length(z, S, R), cache_length(z, S, R, True, True)
        if (t, c) != (t_want, c_want):
            bad.append([z, S, R, t, c, t_want, c_want])
    for S in (64, 100, 192, 1000):
        for R in (1, 32):
            for z in np.linspace(0, 1, 41):
                t = trim_length(float(z), S, R)
                W = S - t
                m = mask_values(torch.full((1, 1, 1), float(z), dtype=torch.float64), S, R, S)[0, 0]
                nonzero = [S - j for j in range(S) if float(m[j]) > 0]  # distances
                if t % 64 or t < 0 or t > S - 1 or (nonzero and max(nonzero) > W):
                    bad.append([float(z), S, R, t])
                if cache_length(float(z), S, R, True, True) < min(S, W):
                    bad.append([float(z), S, R, "cache"])
    report["trim_cache_failures"] = bad
    ok &= not bad

    # 4. whole model vs loop_forward (nll, caches), several configurations.
    results = {}
    configs = [
        ("adapt_cache", dict(adapt_span=True, adapt_span_cache=True, pers_mem_size=0), 0.4),
        ("adapt_nocache", dict(adapt_span=True, adapt_span_cache=False, pers_mem_size=0), 0.4),
        ("adapt_pers", dict(adapt_span=True, adapt_span_cache=True, pers_mem_size=3), 0.4),
        ("plain", dict(adapt_span=False, adapt_span_cache=False, pers_mem_size=0), 0.0),
        ("plain_pers", dict(adapt_span=False, adapt_span_cache=False, pers_mem_size=3), 0.0),
        ("short_cache_pad", dict(adapt_span=True, adapt_span_cache=True, pers_mem_size=0), 0.0),
    ]
    for name, over, hi in configs:
        cfg = dict(vocab=13, n_layer=2, d_model=8, d_inner=12, n_head=2, attn_span=256,
                   tgt_len=8, adapt_span_ramp=16, adapt_span_init=0.0, adapt_span_loss=0.0,
                   dropout=0.0)
        cfg.update(over)
        if cfg["pers_mem_size"]:
            cfg["d_inner"] = 0
        model = AdaptiveSpanLM(cfg).to(torch.float64)
        g = torch.Generator().manual_seed(11)
        init_random(model, 0.3, hi, g)
        model.eval()
        B, M, nb = 2, cfg["tgt_len"], 3
        toks = torch.randint(0, cfg["vocab"], (B, nb * M + 1), generator=g)
        blocks = [(toks[:, s * M:(s + 1) * M], toks[:, s * M + 1:(s + 1) * M + 1])
                  for s in range(nb)]
        override = None
        if name == "short_cache_pad":  # spans grow after block 0: cache too short -> pad
            override = {1: [[0.9, 0.2], [0.5, 0.6]]}
        P = {k: v.detach().numpy().copy() for k, v in model.named_parameters()}
        ref = loop_forward(P, cfg, [(x.numpy(), y.numpy()) for x, y in blocks], override)
        caches = model.zero_caches(B)
        wn, wc, pads = 0.0, 0.0, []
        for s, (x, y) in enumerate(blocks):
            if override and s in override:
                with torch.no_grad():
                    for l in range(cfg["n_layer"]):
                        zt = torch.tensor(override[s][l], dtype=torch.float64).reshape(2, 1, 1)
                        model.seq_attn(l).adaptive_span._mask.current_val.copy_(zt)
            pads.append([model.trim_lens()[l] - (cfg["attn_span"] - caches[l].shape[1])
                         for l in range(cfg["n_layer"])])
            with torch.no_grad():
                nll, caches = model.nll(x, y, caches)
            wn = max(wn, float(np.abs(nll.numpy() - ref[s][0]).max()))
            for l in range(cfg["n_layer"]):
                assert caches[l].shape == ref[s][1][l].shape, (name, l, caches[l].shape)
                wc = max(wc, float(np.abs(caches[l].numpy() - ref[s][1][l]).max()))
        results[name] = {"nll_max_err": wn, "cache_max_err": wc, "trim_minus_missing": pads}
        ok &= wn < 1e-12 and wc < 1e-12
        if name == "short_cache_pad":
            ok &= any(p < 0 for row in pads for p in row)  # the pad branch ran
    report["model_vs_loop_impl"] = results

    # 5. parameter counts (§9.2b).
    counts = {}
    table = [("enwik8", (12, 512, 2048, 8, 8192, 205, 0), 38_538_541),
             ("enwik8_large", (24, 768, 4096, 8, 8192, 205, 0), 208_910_221),
             ("text8", (12, 512, 2048, 8, 8192, 28, 0), 38_357_116),
             ("text8_large", (24, 768, 4096, 8, 8192, 28, 0), 208_638_172),
             ("enwik8_pers_small", (18, 512, 0, 8, 8192, 205, 1024), 38_501_725),
             ("enwik8_pers", (36, 512, 0, 8, 8192, 205, 2048), 114_017_773)]
    for name, (L, D, Fi, H, S, V, N), want in table:
        formula = param_count_formula(L, D, Fi, H, S, V, N)
        actual = None
        if name in ("enwik8", "enwik8_pers_small"):
            m = AdaptiveSpanLM(dict(vocab=V, n_layer=L, d_model=D, d_inner=Fi, n_head=H,
                                    attn_span=S, tgt_len=512, adapt_span=True,
                                    adapt_span_ramp=32, adapt_span_init=0.0,
                                    adapt_span_loss=0.0, adapt_span_cache=True,
                                    pers_mem_size=N, dropout=0.0))
            actual = count_params(m)
            del m
        counts[name] = {"formula": formula, "model": actual, "expected": want}
        ok &= formula == want and (actual is None or actual == want)
    report["param_counts"] = counts

    # 6. real-format state dict keys and order.
    keys_ok = True
    for adapt in (False, True):
        for pers in (0, 3):
            cfg = dict(vocab=7, n_layer=2, d_model=8, d_inner=0 if pers else 12, n_head=2,
                       attn_span=64, tgt_len=4, adapt_span=adapt, adapt_span_ramp=8,
                       adapt_span_init=0.0, adapt_span_loss=0.0, adapt_span_cache=True,
                       pers_mem_size=pers, dropout=0.0)
            sd = reference_state_dict(AdaptiveSpanLM(cfg))
            keys_ok &= [k[len("module."):] for k in sd] == expected_keys(2, adapt, pers)
    report["state_dict_keys_match"] = bool(keys_ok)
    ok &= keys_ok

    # 7. Adagrad step clip vs a hand computation; unclipped vs torch.optim.Adagrad; lr.
    g = torch.Generator().manual_seed(3)
    p1 = nn.Parameter(torch.randn(5, 4, dtype=torch.float64, generator=g))
    p2 = nn.Parameter(p1.detach().clone())
    opt = AdagradStepClip([p1], clip=0.03)
    topt = torch.optim.Adagrad([p2], lr=0.07, eps=1e-10)
    acc = torch.zeros_like(p1)
    want = p1.detach().clone()
    werr, terr = 0.0, 0.0
    for k in range(1, 4):
        grad = torch.randn(5, 4, dtype=torch.float64, generator=g) * (0.01 if k == 2 else 1.0)
        p1.grad = grad.clone()
        opt.step(0.07)
        norm = float(grad.norm())
        clr = 0.07 * (0.03 / (norm + 1e-10) if norm > 0.03 else 1.0)
        acc += grad * grad
        want -= clr * grad / (acc.sqrt() + 1e-10)
        werr = max(werr, float((p1.detach() - want).abs().max()))
    p3 = nn.Parameter(p2.detach().clone())
    opt3 = AdagradStepClip([p3], clip=0.0)
    for k in range(3):
        grad = torch.randn(5, 4, dtype=torch.float64, generator=g)
        p2.grad, p3.grad = grad.clone(), grad.clone()
        topt.step()
        opt3.step(0.07)
        terr = max(terr, float((p2.detach() - p3.detach()).abs().max()))
    report["adagrad_clip_vs_hand_max_err"] = werr
    report["adagrad_noclip_vs_torch_max_err"] = terr
    ok &= werr < 1e-15 and terr < 1e-15
    q = nn.Parameter(torch.zeros(1))
    o = torch.optim.SGD([q], lr=0.07)
    sched = torch.optim.lr_scheduler.LambdaLR(o, lambda s: min(1, s / 4))
    torch_lrs = []
    with warnings.catch_warnings():  # stepping the scheduler first is the point here
        warnings.simplefilter("ignore")
        for _ in range(6):
            sched.step()
            torch_lrs.append(o.param_groups[0]["lr"])
    ours = [lr_at(k, 0.07, 4) for k in range(1, 7)]
    report["lr_schedule"] = ours
    ok &= all(abs(x - y) < 1e-15 for x, y in zip(ours, torch_lrs))
    report["ok"] = bool(ok)
    print(json.dumps(report))
    if not ok:
        sys.exit(1)


# ----------------------------------------------------------------------------- CLI
ALIASES = {  # our name -> the reference's (facebookresearch config.py) spelling
    "n_layer": ["nlayers"], "d_model": ["hid_sz"], "d_inner": ["inner_hid_sz"],
    "n_head": ["nheads"], "tgt_len": ["block_sz"], "warmup": ["lr_warmup"],
    "clip": ["grad_clip"],
}


def add(p, name, **kw):
    """Option that accepts --foo_bar and --foo-bar (and the reference's alias, if any)."""
    flags = []
    for n in [name] + ALIASES.get(name, []):
        for f in ("--" + n.replace("-", "_"), "--" + n.replace("_", "-")):
            if f not in flags:
                flags.append(f)
    p.add_argument(*flags, dest=name.replace("-", "_"), **kw)


def add_flag(p, name, default):
    """--foo_bar / --foo-bar sets True; --no_foo_bar / --no-foo-bar sets False."""
    add(p, name, action="store_true", default=default)
    p.add_argument("--no_" + name, "--no-" + name.replace("_", "-"), dest=name,
                   action="store_false")


def add_model_args(p, defaults):
    """defaults: architecture defaults; None = infer from a state dict."""
    d = dict(n_layer=4, d_model=128, d_inner=512, n_head=4, attn_span=256, vocab=256,
             pers_mem_size=0)
    d.update(defaults)
    for k in ("n_layer", "d_model", "d_inner", "n_head", "attn_span", "vocab", "pers_mem_size"):
        add(p, k, type=int, default=d[k])
    add(p, "tgt_len", type=int, default=d.get("tgt_len", 64), help="block size M")
    add_flag(p, "adapt_span", d.get("adapt_span", False))
    add(p, "adapt_span_ramp", type=int, default=32)
    add(p, "adapt_span_init", type=float, default=0.0)
    add(p, "adapt_span_loss", type=float, default=0.0)
    add_flag(p, "adapt_span_cache", d.get("adapt_span_cache", True))
    add(p, "dropout", type=float, default=0.0)
    add(p, "init_std", type=float, default=d.get("init_std", 0.02))
    add(p, "span_init_hi", type=float, default=0.4,
        help="random inits draw current_val ~ U(0, this) (case, save-random --init normal)")
    add(p, "seed", type=int, default=1)
    p.add_argument("--batch", "--batch-size", "--batch_size", "--batch-sz", "--batch_sz",
                   dest="batch", type=int, default=d.get("batch", 12))
    add(p, "dtype", choices=list(DTYPES), default=d.get("dtype", "float32"))
    add(p, "threads", type=int, default=2, help="torch intra-op threads (default 2)")


def add_opt_args(p, lr, warmup, clip):
    add(p, "lr", type=float, default=lr)
    add(p, "warmup", type=int, default=warmup, help="LambdaLR min(1, k/warmup); 0 = constant")
    add(p, "clip", type=float, default=clip, help="per-tensor Adagrad step clip (grad_clip)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    infer = dict(n_layer=None, d_model=None, d_inner=None, n_head=None, attn_span=None,
                 vocab=None, pers_mem_size=None)

    p = sub.add_parser("case", help="float64 reference case -> DIR/case.safetensors + case.json")
    add(p, "out", required=True)
    add_model_args(p, dict(vocab=13, n_layer=2, d_model=16, d_inner=20, n_head=2,
                           attn_span=192, tgt_len=8, adapt_span=True, adapt_span_cache=True,
                           init_std=0.3, dtype="float64", batch=2))
    add(p, "segments", type=int, default=2)
    p.set_defaults(func=cmd_case)

    p = sub.add_parser("save-random",
                       help="torch.save a random model in the real checkpoint format")
    add(p, "out", required=True)
    add_model_args(p, {})
    add(p, "init", choices=["default", "normal"], default="default",
        help="default: PyTorch/reference init; normal: N(0, init_std), LN weights N(1, init_std)")
    add(p, "span_init_random", action="store_true", help="current_val ~ U(0, 0.5)")
    p.set_defaults(func=cmd_save_random)

    p = sub.add_parser("eval", help="score a byte file with trainer.py full_eval semantics")
    add(p, "state", required=True)
    add(p, "data", required=True)
    add_model_args(p, dict(infer, batch=8))
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train-steps", help="N reference training steps from given weights")
    add(p, "state", required=True)
    add(p, "data", required=True)
    add(p, "steps", type=int, required=True)
    add(p, "save_state", default=None, help="torch.save the final weights (checkpoint format)")
    add_model_args(p, infer)
    add_opt_args(p, lr=0.07, warmup=0, clip=0.03)
    p.set_defaults(func=cmd_train_steps)

    p = sub.add_parser("train", help="time-limited training, then full-eval validation bpc")
    add(p, "data", required=True)
    add(p, "seconds", type=float, required=True)
    add_model_args(p, {})
    add_opt_args(p, lr=0.07, warmup=100, clip=0.03)
    add(p, "max_step", type=int, default=10 ** 9)
    add(p, "eval_batch", type=int, default=8)
    add(p, "eval_tgt_len", type=int, default=None, help="default: --tgt_len")
    add(p, "log_interval", type=int, default=50)
    add(p, "bf16", action="store_true")
    add(p, "save", default=None, help="torch.save the trained weights (checkpoint format)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench-step", help="time forward + backward + Adagrad step")
    add_model_args(p, {})
    add_opt_args(p, lr=0.07, warmup=0, clip=0.03)
    add(p, "repeats", type=int, default=10)
    add(p, "warmup_iters", type=int, default=3)
    add(p, "bf16", action="store_true")
    p.set_defaults(func=cmd_bench_step)

    p = sub.add_parser("selftest", help="formula checks against a loop-based implementation")
    add(p, "threads", type=int, default=1)
    p.set_defaults(func=cmd_selftest)

    a = ap.parse_args(argv)
    torch.set_num_threads(getattr(a, "threads", 2))
    try:
        a.func(a)
    except ValueError as e:
        fail(str(e))


if __name__ == "__main__":
    main()
