#!/usr/bin/python3
"""Independent PyTorch reference for Transformer-XL character models (txl tests).

A small re-implementation of kimiyoung/transformer-xl `MemTransformerLM` restricted to
what the char-level models use (docs: /work/shared/docs/MODELS.md §1, §7, §8.3, §9.1):
attn_type 0 (relative positions, r_w_bias/r_r_bias shared by all layers), div_val 1, no
cutoffs, d_embed = d_model, embedding tied to the output weight with an untied output
bias, embedding x sqrt(d_model), sinusoidal R = [sin | cos] over descending positions
klen-1..0 (clamped at clamp_len > 0), the pad/reshape `_rel_shift`, causal mask
triu(1 + mlen) (+ same_length: masked iff distance >= mem_len), softmax over keys,
post-LN (default) or pre-LN, ReLU FFN, dropout/dropatt in the reference places,
memories = detached per-layer inputs (L + 1 tensors), updated with end = mlen + qlen,
beg = max(0, end - mem_len), empty at the start. LayerNorm eps 1e-5.

`state_dict()` keys equal the reference's (§9.1), including the tied
`crit.out_layers.0.weight` and the `pos_emb.inv_freq` buffer.

Positional frequencies: `inv_freq[k] = 1 / 10000**(2k/D)` is computed in the model's
dtype (the reference computes it in float32 and casts; in float64 that differs by
~1e-8 relative, so the float64 modes here use exact float64 frequencies).
Masked scores: by default -inf is written in the model's dtype. The reference rounds
the whole score tensor through float32 before masked_fill; set
`model.set_mask_via_fp32(True)` (`case --mask-via-fp32`) to reproduce that bit-for-bit.

Subcommands (run with `/usr/bin/python3 scripts/reference/mem_transformer_ref.py CMD -h`):
  case         float64 reference case (weights, tokens, per-token NLL, memories, grads)
  save-random  torch.save(state_dict) of a randomly initialised model
  eval         score a byte file like kimiyoung eval.py
  train-steps  N steps of kimiyoung train.py's loop from given weights
  train        time-limited training on a byte file, then validation bpc
  bench-step   time forward + backward + Adam step
  selftest     formula checks against an independent loop-based implementation
Every option name accepts both `--foo_bar` and `--foo-bar`.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

TIMING_MODES = ("train", "bench-step")
if len(sys.argv) > 1 and sys.argv[1] in TIMING_MODES:
    if os.environ.get("OPENBLAS_NUM_THREADS", "1") != "1":
        sys.exit("mem_transformer_ref.py: error: timing modes need OPENBLAS_NUM_THREADS=1 "
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


# ----------------------------------------------------------------------------- model
def rel_shift(x):
    """x: [T, K, ...] with column c <-> distance K-1-c. Returns [T, K, ...] where
    out[i, j] = x[i, j + T - 1 - i] for j <= K - T + i (distance K - T + i - j); above
    that, out[i, K-T+i+1] = 0 and out[i, j] = x[i+1, j - (K-T+i) - 2] (garbage that the
    causal mask removes). Implemented as the reference's trick: left-pad one zero
    column, view the [T, K+1] buffer flat, drop its first T entries, view as [T, K]."""
    T, K = x.shape[0], x.shape[1]
    rest = tuple(x.shape[2:])
    padded = torch.cat([x.new_zeros((T, 1) + rest), x], dim=1)
    flat = padded.reshape((T * (K + 1),) + rest)
    return flat[T:].reshape((T, K) + rest)


class SinusoidPositions(nn.Module):
    def __init__(self, d_model):
        super().__init__()
        self.d_model = d_model
        self.register_buffer("inv_freq", self.frequencies(torch.float32))

    def frequencies(self, dtype):
        k2 = torch.arange(0.0, self.d_model, 2.0, dtype=dtype)
        return 1.0 / (10000.0 ** (k2 / self.d_model))

    def recompute(self):
        self.inv_freq = self.frequencies(self.inv_freq.dtype).to(self.inv_freq.device)

    def forward(self, positions):  # [K] -> [K, D]
        angles = torch.outer(positions, self.inv_freq.to(positions.dtype))
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class RelAttention(nn.Module):
    """RelPartialLearnableMultiHeadAttn; child order fixes the state_dict key order."""

    def __init__(self, n_head, d_model, d_head, dropout, dropatt, pre_lnorm):
        super().__init__()
        self.n_head, self.d_head, self.pre_lnorm = n_head, d_head, pre_lnorm
        self.qkv_net = nn.Linear(d_model, 3 * n_head * d_head, bias=False)
        self.drop = nn.Dropout(dropout)
        self.dropatt = nn.Dropout(dropatt)
        self.o_net = nn.Linear(n_head * d_head, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model, eps=LN_EPS)
        self.r_net = nn.Linear(d_model, n_head * d_head, bias=False)
        self.scale = 1.0 / (d_head ** 0.5)
        self.mask_via_fp32 = False
        self.keep_scores = False  # selftest hook: keep the pre-mask scores
        self.last_scores = None

    def forward(self, w, R, u, v, mask, mem):
        T, B = w.shape[0], w.shape[1]
        H, Dh = self.n_head, self.d_head
        ctx = w if mem is None or mem.numel() == 0 else torch.cat([mem, w], dim=0)
        K = ctx.shape[0]
        heads = self.qkv_net(self.layer_norm(ctx) if self.pre_lnorm else ctx)
        q, k, val = torch.chunk(heads, 3, dim=-1)
        q = q[K - T:].reshape(T, B, H, Dh)
        k = k.reshape(K, B, H, Dh)
        val = val.reshape(K, B, H, Dh)
        rk = self.r_net(R).reshape(K, H, Dh)
        content = torch.einsum("ibnd,jbnd->ijbn", q + u, k)           # AC
        position = rel_shift(torch.einsum("ibnd,jnd->ijbn", q + v, rk))  # BD
        score = (content + position) * self.scale
        if self.keep_scores:
            self.last_scores = score.detach().clone()
        if bool(mask.any()):
            m = mask[:, :, None, None]
            if self.mask_via_fp32:
                score = score.float().masked_fill(m, -float("inf")).type_as(score)
            else:
                score = score.masked_fill(m, -float("inf"))
        prob = self.dropatt(F.softmax(score, dim=1))
        vec = torch.einsum("ijbn,jbnd->ibnd", prob, val).reshape(T, B, H * Dh)
        out = self.drop(self.o_net(vec))
        return w + out if self.pre_lnorm else self.layer_norm(w + out)


class FeedForward(nn.Module):
    def __init__(self, d_model, d_inner, dropout, pre_lnorm):
        super().__init__()
        self.pre_lnorm = pre_lnorm
        # indices 0 and 3 carry the weights: CoreNet.0.*, CoreNet.3.*
        self.CoreNet = nn.Sequential(
            nn.Linear(d_model, d_inner), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(d_inner, d_model), nn.Dropout(dropout))
        self.layer_norm = nn.LayerNorm(d_model, eps=LN_EPS)

    def forward(self, x):
        if self.pre_lnorm:
            return x + self.CoreNet(self.layer_norm(x))
        return self.layer_norm(x + self.CoreNet(x))


class Block(nn.Module):
    def __init__(self, n_head, d_model, d_head, d_inner, dropout, dropatt, pre_lnorm):
        super().__init__()
        self.dec_attn = RelAttention(n_head, d_model, d_head, dropout, dropatt, pre_lnorm)
        self.pos_ff = FeedForward(d_model, d_inner, dropout, pre_lnorm)

    def forward(self, h, R, u, v, mask, mem):
        return self.pos_ff(self.dec_attn(h, R, u, v, mask, mem))


class ScaledEmbedding(nn.Module):
    def __init__(self, n_token, d_model):
        super().__init__()
        self.emb_layers = nn.ModuleList([nn.Embedding(n_token, d_model)])
        self.emb_scale = d_model ** 0.5

    def forward(self, tokens):
        return self.emb_layers[0](tokens) * self.emb_scale


class FullSoftmax(nn.Module):
    """ProjectedAdaptiveLogSoftmax without clusters: one Linear (weight tied)."""

    def __init__(self, n_token, d_model):
        super().__init__()
        self.out_layers = nn.ModuleList([nn.Linear(d_model, n_token)])

    def forward(self, z, target):
        lin = self.out_layers[0]
        logp = F.log_softmax(F.linear(z, lin.weight, lin.bias), dim=-1)
        return -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)


class MemTransformerLM(nn.Module):
    def __init__(self, n_token, n_layer, n_head, d_model, d_head, d_inner,
                 dropout=0.0, dropatt=0.0, tgt_len=64, mem_len=64,
                 pre_lnorm=False, same_length=False, clamp_len=-1):
        super().__init__()
        self.n_token, self.n_layer, self.n_head = n_token, n_layer, n_head
        self.d_model, self.d_head, self.d_inner = d_model, d_head, d_inner
        self.tgt_len, self.mem_len = tgt_len, mem_len
        self.pre_lnorm, self.same_length, self.clamp_len = pre_lnorm, same_length, clamp_len
        self.r_w_bias = nn.Parameter(torch.zeros(n_head, d_head))
        self.r_r_bias = nn.Parameter(torch.zeros(n_head, d_head))
        self.word_emb = ScaledEmbedding(n_token, d_model)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList([
            Block(n_head, d_model, d_head, d_inner, dropout, dropatt, pre_lnorm)
            for _ in range(n_layer)])
        self.crit = FullSoftmax(n_token, d_model)
        self.crit.out_layers[0].weight = self.word_emb.emb_layers[0].weight  # tied
        self.pos_emb = SinusoidPositions(d_model)

    @property
    def dtype(self):
        return self.r_w_bias.dtype

    def set_mask_via_fp32(self, on):
        for layer in self.layers:
            layer.dec_attn.mask_via_fp32 = on

    def empty_mems(self):
        dev = next(self.parameters()).device
        return [torch.empty(0, dtype=self.dtype, device=dev) for _ in range(self.n_layer + 1)]

    def attn_mask(self, qlen, mlen, device=None):
        """[qlen, klen] bool, True = masked, built like the reference (triu / tril)."""
        klen = mlen + qlen
        ones = torch.ones(qlen, klen, device=device)
        mask = torch.triu(ones, diagonal=1 + mlen)
        if self.same_length:
            over = klen - self.mem_len
            shift = qlen - over if over > 0 else qlen
            mask = mask + torch.tril(ones, diagonal=-shift)
        return mask > 0

    def forward(self, data, target, *mems):
        """data, target: [T, B] long. mems: L+1 tensors [M, B, D] (or none/empty).
        Returns (per-token nll [T', B] for the last T' = target.size(0) positions,
        new memories: list of L+1 detached tensors)."""
        if not mems:
            mems = self.empty_mems()
        qlen = data.shape[0]
        mlen = mems[0].shape[0] if mems[0].numel() > 0 else 0
        klen = mlen + qlen
        h = self.word_emb(data)
        mask = self.attn_mask(qlen, mlen, h.device)
        positions = torch.arange(klen - 1, -1, -1.0, dtype=h.dtype, device=h.device)
        if self.clamp_len > 0:
            positions = positions.clamp(max=self.clamp_len)
        R = self.drop(self.pos_emb(positions))
        h = self.drop(h)
        hids = [h]
        for l, layer in enumerate(self.layers):
            h = layer(h, R, self.r_w_bias, self.r_r_bias, mask, mems[l])
            hids.append(h)
        z = self.drop(h)
        new_mems = self.update_mems(hids, mems, mlen, qlen)
        tl = target.shape[0]
        return self.crit(z[qlen - tl:], target), new_mems

    def update_mems(self, hids, mems, mlen, qlen):
        end = mlen + qlen
        beg = max(0, end - self.mem_len)
        out = []
        with torch.no_grad():
            for h, m in zip(hids, mems):
                cat = h if m.numel() == 0 else torch.cat([m.to(h.dtype), h], dim=0)
                out.append(cat[beg:end].detach())
        return out


def build_model(a, n_token=None):
    return MemTransformerLM(
        n_token if n_token is not None else a.vocab, a.n_layer, a.n_head, a.d_model,
        a.d_head, a.d_inner, dropout=a.dropout, dropatt=a.dropatt, tgt_len=a.tgt_len,
        mem_len=a.mem_len, pre_lnorm=a.pre_lnorm, same_length=a.same_length,
        clamp_len=a.clamp_len)


def set_dtype(model, dtype):
    """Cast all parameters/buffers and recompute inv_freq in that dtype."""
    model.to(dtype)
    model.pos_emb.recompute()
    return model


def init_weights(model, std, everything_random=False, generator=None):
    """MODELS.md §1.10: weights ~ N(0, std) (Linear, Embedding = tied output weight,
    r_w_bias, r_r_bias), LayerNorm weight ~ N(1, std), biases 0. With
    everything_random, biases (FFN, output, LayerNorm) ~ N(0, std) too (test cases)."""
    with torch.no_grad():
        for name, p in model.named_parameters():  # the tied weight appears once
            if name.endswith("layer_norm.weight"):
                p.normal_(1.0, std, generator=generator)
            elif name.endswith(".bias") and not everything_random:
                p.zero_()
            else:
                p.normal_(0.0, std, generator=generator)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def param_count_formula(n_layer, n_head, d_model, d_head, d_inner, vocab):
    """MODELS.md §9.2b (tied, d_embed = D, no cutoffs)."""
    D, H, Dh, Fi = d_model, n_head, d_head, d_inner
    per_layer = 5 * D * H * Dh + D * Fi + Fi + Fi * D + D + 4 * D
    return n_layer * per_layer + vocab * D + vocab + 2 * H * Dh


# ----------------------------------------------------------------------------- data
class OrderedStream:
    """kimiyoung LMOrderedIterator (ext_len 0): column b is the contiguous stream
    b*n_step .. (b+1)*n_step-1; batch k = rows [k*T, k*T+T), targets shifted by one,
    the last batch shorter."""

    def __init__(self, tokens, bsz, bptt):
        self.bsz, self.bptt = bsz, bptt
        self.n_step = tokens.numel() // bsz
        if self.n_step < 2:
            raise ValueError(f"stream of {tokens.numel()} tokens is too short for batch {bsz}")
        self.data = tokens[:self.n_step * bsz].reshape(bsz, self.n_step).t().contiguous()

    def __iter__(self):
        for i in range(0, self.n_step - 1, self.bptt):
            seq_len = min(self.bptt, self.n_step - 1 - i)
            yield self.data[i:i + seq_len], self.data[i + 1:i + 1 + seq_len], seq_len

    def n_batches(self):
        return (self.n_step - 1 + self.bptt - 1) // self.bptt


def read_bytes(path):
    with open(path, "rb") as f:
        raw = f.read()
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).astype(np.int64))


def evaluate(model, stream):
    """eval.py: total_loss += seq_len * mean segment loss; / total_len (memories carried,
    empty at the start). Returns (mean nll in nats per predicted token, tokens)."""
    was_training = model.training
    model.eval()
    total_loss, total_len, mems = 0.0, 0, ()
    with torch.no_grad():
        for data, target, seq_len in stream:
            loss, mems = model(data, target, *mems)
            total_loss += seq_len * loss.mean().item()
            total_len += seq_len
    model.train(was_training)
    return total_loss / total_len, total_len * stream.bsz


def lr_at(t, lr0, warmup, max_step, min_lr):
    """Learning rate for update number t (t = 1, 2, ...: the t-th optimizer step; it is
    set before that step runs):
        t <= warmup            lr0 * t / warmup
        warmup < t <= max_step min_lr + 0.5 * (lr0 - min_lr) * (1 + cos(pi * p)),
                               p = (t - warmup) / (max_step - warmup)
        t > max_step           min_lr
    (warmup = 0 gives a pure cosine starting just below lr0.) Note: kimiyoung train.py
    differs (update 1 uses lr0 undecayed, cosine from 0 over max_step with floor eta_min);
    this schedule is the one the txl engine mirrors."""
    if warmup > 0 and t <= warmup:
        return lr0 * t / warmup
    if t >= max_step or max_step <= warmup:
        return min_lr
    p = (t - warmup) / (max_step - warmup)
    return min_lr + 0.5 * (lr0 - min_lr) * (1.0 + math.cos(math.pi * p))


def make_adam(model, a):
    return torch.optim.Adam(model.parameters(), lr=a.lr, betas=tuple(a.betas), eps=a.eps,
                            weight_decay=0.0)


def train_update(model, opt, data, target, mems, lr, clip, bf16=False):
    """One update of train.py's loop: zero grads, forward, loss.mean(), backward,
    clip_grad_norm_ (global, coefficient clip / (norm + 1e-6) capped at 1), Adam step
    with the given lr. Returns (loss value, pre-clip global grad norm, new mems). With
    bf16 the forward runs under torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's
    fastest CPU setting where bf16 is native."""
    model.zero_grad(set_to_none=False)
    if bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, mems = model(data, target, *mems)
            loss = loss.float().mean()
        mems = tuple(m.float() for m in mems)
    else:
        loss, mems = model(data, target, *mems)
        loss = loss.mean()
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    if clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
    else:
        norm = torch.norm(torch.stack([p.grad.detach().norm(2) for p in params]), 2)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.step()
    return loss.item(), float(norm), mems


# ----------------------------------------------------------------------------- state
def load_state(path):
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        sys.exit(f"error: {path}: not a state dict")
    return obj


def infer_arch(a, state):
    """Fills architecture options left unset from the state dict's shapes."""
    found = {
        "n_layer": 1 + max(int(k.split(".")[1]) for k in state if k.startswith("layers.")),
        "n_head": state["r_w_bias"].shape[0],
        "d_head": state["r_w_bias"].shape[1],
        "vocab": state["word_emb.emb_layers.0.weight"].shape[0],
        "d_model": state["word_emb.emb_layers.0.weight"].shape[1],
        "d_inner": state["layers.0.pos_ff.CoreNet.0.weight"].shape[0],
    }
    for k, v in found.items():
        given = getattr(a, k)
        if given is None:
            setattr(a, k, int(v))
        elif int(given) != int(v):
            sys.exit(f"error: --{k} {given} does not match the state dict ({v})")


def model_from_state(a, state, dtype):
    infer_arch(a, state)
    model = build_model(a)
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in state.items() if k != "pos_emb.inv_freq"}, strict=False)
    missing = [k for k in missing if k != "pos_emb.inv_freq"]
    if missing or unexpected:
        sys.exit(f"error: state dict mismatch: missing {missing}, unexpected {unexpected}")
    return set_dtype(model, dtype)


# ----------------------------------------------------------------------------- commands
def cmd_case(a):
    dtype = DTYPES[a.dtype]
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    model = set_dtype(build_model(a), dtype)
    init_weights(model, a.init_std, everything_random=True, generator=g)
    model.set_mask_via_fp32(a.mask_via_fp32)
    model.eval()
    T, B, S = a.tgt_len, a.batch, a.segments
    stream = torch.randint(0, a.vocab, (S * T + 1, B), generator=g)
    out = {}
    names = [n for n, _ in model.named_parameters()]
    for n, p in model.named_parameters():
        out[f"param/{n}"] = p.detach().clone()
    out["buffer/pos_emb.inv_freq"] = model.pos_emb.inv_freq.detach().clone()
    mems, J = (), 0.0
    mem_lens = []
    for s in range(S):
        data, target = stream[s * T:(s + 1) * T], stream[s * T + 1:(s + 1) * T + 1]
        loss, mems = model(data, target, *mems)
        J = J + loss.mean()
        out[f"input/{s}"] = data.clone()
        out[f"target/{s}"] = target.clone()
        out[f"loss/{s}"] = loss.detach().clone()
        for l, m in enumerate(mems):
            out[f"mem/{s}/{l}"] = m.clone()
        mem_lens.append(int(mems[0].shape[0]))
    J.backward()
    for n, p in model.named_parameters():
        out[f"grad/{n}"] = p.grad.detach().clone()
    os.makedirs(a.out, exist_ok=True)
    safetensors_io.save_file(os.path.join(a.out, "case.safetensors"), out,
                             metadata={"format": "txl-reference-case", "version": "1"})
    info = {k: v for k, v in vars(a).items() if k not in ("func", "out")}
    info.update({
        "model": "transformer-xl (kimiyoung MemTransformerLM, attn_type 0)",
        "params": names,
        "tied": {"crit.out_layers.0.weight": "word_emb.emb_layers.0.weight"},
        "J": "sum over segments s of loss/<s>.mean(); memories detached",
        "mem_lens": mem_lens,
        "objective_J": J.item(),
        "inv_freq": "1/10000**(arange(0,D,2)/D) computed in " + a.dtype,
        "masked_scores": ("scores rounded through float32, then -inf (as kimiyoung)"
                          if a.mask_via_fp32 else "-inf in " + a.dtype + " (no float32 round trip)"),
        "layer_norm_eps": LN_EPS,
        "torch_version": torch.__version__,
    })
    with open(os.path.join(a.out, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps({"out": a.out, "J": J.item(), "tensors": len(out)}))


def cmd_save_random(a):
    torch.manual_seed(a.seed)
    model = build_model(a)
    init_weights(model, a.init_std)
    set_dtype(model, DTYPES[a.dtype])
    model.pos_emb.inv_freq = model.pos_emb.frequencies(torch.float32).to(model.dtype)
    torch.save(model.state_dict(), a.out)
    print(json.dumps({"out": a.out, "params": count_params(model)}))


def cmd_eval(a):
    model = model_from_state(a, load_state(a.state), DTYPES[a.dtype])
    tokens = read_bytes(a.data)
    if int(tokens.max()) >= model.n_token:
        sys.exit(f"error: byte {int(tokens.max())} does not fit the vocabulary of {model.n_token}")
    nll, n = evaluate(model, OrderedStream(tokens, a.batch, a.tgt_len))
    print(json.dumps({"nll": nll, "bpc": nll / math.log(2), "tokens": n}))


def cmd_train_steps(a):
    model = model_from_state(a, load_state(a.state), DTYPES[a.dtype])
    model.train()  # dropout is whatever --dropout says (default 0)
    tokens = read_bytes(a.data)
    if int(tokens.max()) >= model.n_token:
        sys.exit(f"error: byte {int(tokens.max())} does not fit the vocabulary of {model.n_token}")
    stream = OrderedStream(tokens, a.batch, a.tgt_len)
    opt = make_adam(model, a)
    losses, lrs, norms = [], [], []
    batches, mems = iter(stream), ()
    for t in range(1, a.steps + 1):
        try:
            data, target, _ = next(batches)
        except StopIteration:  # new epoch: restart at row 0 with empty memories
            batches, mems = iter(stream), ()
            data, target, _ = next(batches)
        lr = lr_at(t, a.lr, a.warmup, a.max_step, a.min_lr)
        loss, norm, mems = train_update(model, opt, data, target, mems, lr, a.clip)
        losses.append(loss)
        lrs.append(lr)
        norms.append(norm)
    if a.save_state:
        torch.save(model.state_dict(), a.save_state)
    print(json.dumps({"losses": losses, "lrs": lrs, "grad_norms": norms}))


def cmd_train(a):
    torch.manual_seed(a.seed)
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
    model = build_model(a, n_token=len(symbols))
    init_weights(model, a.init_std)
    set_dtype(model, DTYPES[a.dtype])
    model.train()
    opt = make_adam(model, a)
    stream = OrderedStream(train_tok, a.batch, a.tgt_len)
    print(f"train: {n_train} bytes, vocab {len(symbols)}, params {count_params(model)}, "
          f"{stream.n_batches()} batches/epoch", file=sys.stderr)
    batches, mems = iter(stream), ()
    steps, tokens, losses = 0, 0, []
    t0 = time.perf_counter()
    while steps < a.max_step:
        try:
            data, target, seq_len = next(batches)
        except StopIteration:
            batches, mems = iter(stream), ()
            data, target, seq_len = next(batches)
        lr = lr_at(steps + 1, a.lr, a.warmup, a.max_step, a.min_lr)
        loss, _, mems = train_update(model, opt, data, target, mems, lr, a.clip, a.bf16)
        steps += 1
        tokens += seq_len * a.batch
        losses.append(loss)
        elapsed = time.perf_counter() - t0
        if steps % a.log_interval == 0:
            recent = sum(losses[-a.log_interval:]) / len(losses[-a.log_interval:])
            print(f"step {steps} lr {lr:.3g} loss {recent:.4f} bpc {recent / math.log(2):.4f} "
                  f"{elapsed:.1f}s {tokens / elapsed:.0f} tok/s", file=sys.stderr)
        if elapsed >= a.seconds:
            break
    train_seconds = time.perf_counter() - t0
    model.mem_len, model.tgt_len = a.eval_mem_len, a.eval_tgt_len
    val_loss, val_tokens = evaluate(model, OrderedStream(val_tok, a.eval_batch, a.eval_tgt_len))
    if a.save:
        torch.save(model.state_dict(), a.save)
    print(json.dumps({
        "val_loss": val_loss, "val_bpc": val_loss / math.log(2), "steps": steps,
        "train_tokens_per_s": tokens / train_seconds, "train_seconds": train_seconds,
        "val_tokens": val_tokens, "val_oov_dropped": oov, "vocab_size": len(symbols),
        "params": count_params(model),
        "final_train_loss": sum(losses[-a.log_interval:]) / len(losses[-a.log_interval:]),
    }))


def cmd_bench_step(a):
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    model = build_model(a).to(dev)
    init_weights(model, a.init_std)
    model.train()
    opt = make_adam(model, a)
    T, B = a.tgt_len, a.batch
    data = torch.randint(0, a.vocab, (T, B), device=dev)
    target = torch.randint(0, a.vocab, (T, B), device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()
    mems = ()
    with torch.no_grad():  # fill the memories to mem_len
        for _ in range(max(1, -(-a.mem_len // T))):
            _, mems = model(data, target, *mems)

    def step():
        model.zero_grad(set_to_none=False)
        if a.bf16:
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                loss, _ = model(data, target, *mems)
                loss = loss.float().mean()
        else:
            loss, _ = model(data, target, *mems)
            loss = loss.mean()
        loss.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()

    for _ in range(a.warmup_iters):
        step()
    times = []
    for _ in range(a.repeats):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    print(json.dumps({"ms_per_step": ms, "tokens_per_s": T * B / (ms / 1e3),
                      "repeats": a.repeats, "bf16": a.bf16, "threads": torch.get_num_threads(),
                      "device": str(dev),
                      "mem_len": int(mems[0].shape[0]), "tgt_len": T, "batch": B,
                      "params": count_params(model),
                      # tensor memory at its peak (as txl's peak_bytes); CUDA only
                      "peak_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None}))


# ----------------------------------------------------------------------------- selftest
def loop_forward(P, cfg, segments):
    """Independent numpy float64 forward straight from the MODELS.md §1 formulas:
    explicit per-(i, j) scores with R(delta), delta = mlen + i - j, no rel_shift, masks
    in closed form (delta < 0, or same_length and delta >= mem_len). P: name -> ndarray.
    Returns [(nll [T, B], mems list)] per segment."""
    L, H, Dh, D = cfg["n_layer"], cfg["n_head"], cfg["d_head"], cfg["d_model"]
    mem_len, clamp, same = cfg["mem_len"], cfg["clamp_len"], cfg["same_length"]
    pre = cfg["pre_lnorm"]
    E = P["word_emb.emb_layers.0.weight"]
    inv = 1.0 / (10000.0 ** (np.arange(0, D, 2, dtype=np.float64) / D))

    def R(delta):
        pos = min(delta, clamp) if clamp > 0 else delta
        return np.concatenate([np.sin(pos * inv), np.cos(pos * inv)])

    def ln(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + LN_EPS) * w + b

    u, v = P["r_w_bias"], P["r_r_bias"]
    mems = [np.zeros((0,) + (segments[0][0].shape[1], D)) for _ in range(L + 1)]
    results = []
    for data, target in segments:
        T, B = data.shape
        M = mems[0].shape[0]
        h = E[data] * math.sqrt(D)
        hids = [h]
        for l in range(L):
            pre_k = f"layers.{l}."
            Wqkv = P[pre_k + "dec_attn.qkv_net.weight"]
            Wr = P[pre_k + "dec_attn.r_net.weight"]
            Wo = P[pre_k + "dec_attn.o_net.weight"]
            g1, b1 = P[pre_k + "dec_attn.layer_norm.weight"], P[pre_k + "dec_attn.layer_norm.bias"]
            cat = np.concatenate([mems[l], h], 0)
            src = ln(cat, g1, b1) if pre else cat
            K = cat.shape[0]
            attn = np.zeros((T, B, H * Dh))
            for b in range(B):
                for n in range(H):
                    rows = slice(n * Dh, (n + 1) * Dh)
                    Wq, Wk = Wqkv[rows], Wqkv[H * Dh:][rows]
                    Wv, Wrn = Wqkv[2 * H * Dh:][rows], Wr[rows]
                    for i in range(T):
                        q = Wq @ src[M + i, b]
                        s = np.full(K, -np.inf)
                        for j in range(K):
                            d = M + i - j
                            if d < 0 or (same and d >= mem_len):
                                continue
                            s[j] = ((q + u[n]) @ (Wk @ src[j, b])
                                    + (q + v[n]) @ (Wrn @ R(d))) / math.sqrt(Dh)
                        p = np.exp(s - s.max())
                        p /= p.sum()
                        attn[i, b, rows] = sum(p[j] * (Wv @ src[j, b]) for j in range(K))
            o = attn @ Wo.T
            a1 = h + o if pre else ln(h + o, g1, b1)
            W1, c1 = P[pre_k + "pos_ff.CoreNet.0.weight"], P[pre_k + "pos_ff.CoreNet.0.bias"]
            W2, c2 = P[pre_k + "pos_ff.CoreNet.3.weight"], P[pre_k + "pos_ff.CoreNet.3.bias"]
            g2, b2 = P[pre_k + "pos_ff.layer_norm.weight"], P[pre_k + "pos_ff.layer_norm.bias"]
            ff_in = ln(a1, g2, b2) if pre else a1
            f = np.maximum(ff_in @ W1.T + c1, 0.0) @ W2.T + c2
            h = a1 + f if pre else ln(a1 + f, g2, b2)
            hids.append(h)
        logits = h @ E.T + P["crit.out_layers.0.bias"]
        mx = logits.max(-1, keepdims=True)
        logz = mx[..., 0] + np.log(np.exp(logits - mx).sum(-1))
        nll = logz - np.take_along_axis(logits, target[..., None], -1)[..., 0]
        end = M + T
        beg = max(0, end - mem_len)
        mems = [np.concatenate([m, x], 0)[beg:end] for m, x in zip(mems, hids)]
        results.append((nll, mems))
    return results


def cmd_selftest(a):
    ok = True
    report = {}

    # 1. rel_shift index semantics, garbage region included.
    worst = 0
    for T in range(1, 6):
        for M in range(0, 5):
            K = M + T
            x = torch.arange(1, T * K + 1, dtype=torch.float64).reshape(T, K)
            y = rel_shift(x)
            for i in range(T):
                for j in range(K):
                    if j <= M + i:
                        want = x[i, j + T - 1 - i]
                    elif j == M + i + 1:
                        want = 0.0
                    else:
                        want = x[i + 1, j - M - i - 2]
                    worst = max(worst, abs(float(y[i, j] - want)))
    report["rel_shift_index_max_err"] = worst
    ok &= worst == 0

    # 2. same_length mask construction == closed form.
    bad = 0
    m = MemTransformerLM(5, 1, 1, 4, 2, 4, mem_len=7, same_length=True)
    for qlen in range(1, 9):
        for mlen in range(0, 8):
            mask = m.attn_mask(qlen, mlen)
            i = torch.arange(qlen)[:, None]
            j = torch.arange(mlen + qlen)[None, :]
            delta = mlen + i - j
            bad += int((mask != ((delta < 0) | (delta >= m.mem_len))).sum())
    report["same_length_mask_mismatches"] = bad
    ok &= bad == 0

    # 3. scores via rel_shift vs the direct formula; 4. whole model vs loop_forward.
    worst_score, worst_nll, worst_mem = 0.0, 0.0, 0.0
    for same, clamp, pre in [(False, -1, False), (True, -1, False), (False, 3, False),
                             (True, 4, True), (False, -1, True)]:
        cfg = dict(n_layer=2, n_head=3, d_model=12, d_head=4, d_inner=20, vocab=11,
                   tgt_len=5, mem_len=7, same_length=same, clamp_len=clamp, pre_lnorm=pre)
        model = MemTransformerLM(cfg["vocab"], cfg["n_layer"], cfg["n_head"], cfg["d_model"],
                                 cfg["d_head"], cfg["d_inner"], tgt_len=5, mem_len=7,
                                 pre_lnorm=pre, same_length=same, clamp_len=clamp)
        set_dtype(model, torch.float64)
        g = torch.Generator().manual_seed(7)
        init_weights(model, 0.3, everything_random=True, generator=g)
        model.eval()
        attn0 = model.layers[0].dec_attn
        attn0.keep_scores = True
        T, B = 5, 2
        toks = torch.randint(0, cfg["vocab"], (3 * T + 1, B), generator=g)
        segs = [(toks[s * T:(s + 1) * T], toks[s * T + 1:(s + 1) * T + 1]) for s in range(3)]
        P = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        ref = loop_forward(P, cfg, [(d.numpy(), t.numpy()) for d, t in segs])
        mems = ()
        for s, (d, t) in enumerate(segs):
            mem0 = mems[0] if mems else torch.empty(0, dtype=torch.float64)
            with torch.no_grad():
                nll, mems = model(d, t, *mems)
            # direct formula for layer 0
            M = mem0.shape[0] if mem0.numel() else 0
            h0 = model.word_emb(d)
            cat = h0 if M == 0 else torch.cat([mem0, h0], 0)
            src = attn0.layer_norm(cat) if pre else cat
            Wqkv, Wr = attn0.qkv_net.weight, attn0.r_net.weight
            H, Dh = cfg["n_head"], cfg["d_head"]
            inv = model.pos_emb.inv_freq
            S = attn0.last_scores
            with torch.no_grad():
                for i in range(T):
                    for j in range(M + T):
                        delta = M + i - j
                        if delta < 0:
                            continue
                        pos = min(delta, clamp) if clamp > 0 else delta
                        Rd = torch.cat([torch.sin(pos * inv), torch.cos(pos * inv)])
                        for b in range(B):
                            for n in range(H):
                                rows = slice(n * Dh, (n + 1) * Dh)
                                q = Wqkv[rows] @ src[M + i, b]
                                k = Wqkv[H * Dh:][rows] @ src[j, b]
                                want = ((q + model.r_w_bias[n]) @ k
                                        + (q + model.r_r_bias[n]) @ (Wr[rows] @ Rd)) / math.sqrt(Dh)
                                worst_score = max(worst_score, abs(float(S[i, j, b, n] - want)))
            worst_nll = max(worst_nll, float(np.abs(nll.numpy() - ref[s][0]).max()))
            for l in range(cfg["n_layer"] + 1):
                assert mems[l].shape[0] == ref[s][1][l].shape[0] == min(7, (s + 1) * T)
                worst_mem = max(worst_mem, float(np.abs(mems[l].numpy() - ref[s][1][l]).max()))
    report["score_vs_direct_formula_max_err"] = worst_score
    report["nll_vs_loop_impl_max_err"] = worst_nll
    report["mems_vs_loop_impl_max_err"] = worst_mem
    ok &= worst_score < 1e-12 and worst_nll < 1e-12 and worst_mem < 1e-12

    # 5. parameter counts (§9.2b).
    counts = {}
    for (L, H, D, Dh, Fi, V), want in [((12, 8, 512, 64, 2048, 204), 41_055_436),
                                       ((24, 8, 1024, 128, 3072, 204), 277_231_820)]:
        formula = param_count_formula(L, H, D, Dh, Fi, V)
        actual = count_params(MemTransformerLM(V, L, H, D, Dh, Fi)) if L == 12 else None
        counts[f"{L}L/{D}/{H}x{Dh}/{Fi}/V={V}"] = {"formula": formula, "model": actual,
                                                   "expected": want}
        ok &= formula == want and (actual is None or actual == want)
    report["param_counts"] = counts

    # 6. state_dict keys (§9.1 order).
    sd = MemTransformerLM(11, 2, 3, 12, 4, 20).state_dict()
    want_keys = ["r_w_bias", "r_r_bias", "word_emb.emb_layers.0.weight"]
    for l in range(2):
        p = f"layers.{l}."
        want_keys += [p + "dec_attn.qkv_net.weight", p + "dec_attn.o_net.weight",
                      p + "dec_attn.layer_norm.weight", p + "dec_attn.layer_norm.bias",
                      p + "dec_attn.r_net.weight", p + "pos_ff.CoreNet.0.weight",
                      p + "pos_ff.CoreNet.0.bias", p + "pos_ff.CoreNet.3.weight",
                      p + "pos_ff.CoreNet.3.bias", p + "pos_ff.layer_norm.weight",
                      p + "pos_ff.layer_norm.bias"]
    want_keys += ["crit.out_layers.0.weight", "crit.out_layers.0.bias", "pos_emb.inv_freq"]
    report["state_dict_keys_match"] = list(sd.keys()) == want_keys
    report["tied_same_storage"] = (sd["crit.out_layers.0.weight"].data_ptr()
                                   == sd["word_emb.emb_layers.0.weight"].data_ptr())
    ok &= report["state_dict_keys_match"] and report["tied_same_storage"]

    # 7. lr schedule corner values.
    report["lr_schedule"] = [lr_at(t, 1e-3, 100, 3000, 1e-4) for t in (1, 100, 101, 3000, 3001)]
    report["ok"] = bool(ok)
    print(json.dumps(report))
    if not ok:
        sys.exit(1)


# ----------------------------------------------------------------------------- CLI
def add(p, name, **kw):
    """Option that accepts --foo_bar and --foo-bar."""
    under, dash = "--" + name.replace("-", "_"), "--" + name.replace("_", "-")
    flags = [under] if under == dash else [under, dash]
    p.add_argument(*flags, dest=name.replace("-", "_"), **kw)


def add_model_args(p, defaults):
    """defaults: dict of architecture defaults; None = infer from a state dict."""
    d = dict(n_layer=4, n_head=4, d_model=128, d_head=32, d_inner=512, vocab=256)
    d.update(defaults)
    for k in ("n_layer", "n_head", "d_model", "d_head", "d_inner", "vocab"):
        add(p, k, type=int, default=d[k])
    add(p, "tgt_len", type=int, default=d.get("tgt_len", 64))
    add(p, "mem_len", type=int, default=d.get("mem_len", 64))
    add(p, "clamp_len", type=int, default=-1)
    add(p, "same_length", action="store_true")
    add(p, "pre_lnorm", action="store_true")
    add(p, "dropout", type=float, default=0.0)
    add(p, "dropatt", type=float, default=0.0)
    add(p, "init_std", type=float, default=d.get("init_std", 0.02))
    add(p, "seed", type=int, default=1)
    p.add_argument("--batch", "--batch-size", "--batch_size", dest="batch", type=int,
                   default=d.get("batch", 12))
    add(p, "dtype", choices=list(DTYPES), default=d.get("dtype", "float32"))
    add(p, "threads", type=int, default=2, help="torch intra-op threads (default 2)")


def add_opt_args(p, lr, warmup, max_step, min_lr, clip):
    add(p, "lr", type=float, default=lr)
    add(p, "warmup", type=int, default=warmup)
    add(p, "max_step", type=int, default=max_step)
    add(p, "min_lr", type=float, default=min_lr)
    add(p, "clip", type=float, default=clip)
    add(p, "betas", type=float, nargs=2, default=[0.9, 0.999])
    add(p, "eps", type=float, default=1e-8)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    infer = dict(n_layer=None, n_head=None, d_model=None, d_head=None, d_inner=None, vocab=None)

    p = sub.add_parser("case", help="float64 reference case -> DIR/case.safetensors + case.json")
    add(p, "out", required=True)
    add_model_args(p, dict(init_std=0.3, dtype="float64", batch=2))
    add(p, "segments", type=int, default=2)
    add(p, "mask_via_fp32", action="store_true",
        help="round scores through float32 before masking, exactly like kimiyoung")
    p.set_defaults(func=cmd_case)

    p = sub.add_parser("save-random", help="torch.save(state_dict) of a random model")
    add(p, "out", required=True)
    add_model_args(p, {})
    p.set_defaults(func=cmd_save_random)

    p = sub.add_parser("eval", help="score a byte file like kimiyoung eval.py")
    add(p, "state", required=True)
    add(p, "data", required=True)
    add_model_args(p, dict(infer, batch=10))
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train-steps", help="N steps of train.py's loop from given weights")
    add(p, "state", required=True)
    add(p, "data", required=True)
    add(p, "steps", type=int, required=True)
    add(p, "save_state", default=None, help="torch.save the final state_dict here")
    add_model_args(p, infer)
    add_opt_args(p, lr=2.5e-4, warmup=0, max_step=400000, min_lr=0.0, clip=0.25)
    p.set_defaults(func=cmd_train_steps)

    p = sub.add_parser("train", help="time-limited training, then validation bpc")
    add(p, "data", required=True)
    add(p, "seconds", type=float, required=True)
    add_model_args(p, {})
    add_opt_args(p, lr=1e-3, warmup=100, max_step=3000, min_lr=1e-4, clip=1.0)
    add(p, "eval_batch", type=int, default=10)
    add(p, "eval_tgt_len", type=int, default=64)
    add(p, "eval_mem_len", type=int, default=64)
    add(p, "log_interval", type=int, default=50)
    add(p, "save", default=None, help="torch.save the trained state_dict here")
    add(p, "bf16", action="store_true", help="train under torch.autocast(cpu, bfloat16)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench-step", help="time forward + backward + Adam step (fp32)")
    add_model_args(p, {})
    add_opt_args(p, lr=1e-3, warmup=0, max_step=1, min_lr=0.0, clip=0.0)
    add(p, "repeats", type=int, default=10)
    add(p, "warmup_iters", type=int, default=3)
    add(p, "bf16", action="store_true", help="torch.autocast(DEVICE, bfloat16)")
    add(p, "device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=cmd_bench_step)

    p = sub.add_parser("selftest", help="formula checks against a loop-based implementation")
    p.set_defaults(func=cmd_selftest)

    a = ap.parse_args(argv)
    torch.set_num_threads(getattr(a, "threads", 2))
    a.func(a)


if __name__ == "__main__":
    main()
