#!/usr/bin/python3
"""Convert reference PyTorch checkpoints into a txl model directory.

Usage:
  scripts/import_reference.py transformer-xl STATE_DICT.pt OUT_DIR --vocab bytes \\
      --n_layer N --n_head H --d_model D --d_head Dh --d_inner F --tgt_len T --mem_len M \\
      [--pre_lnorm] [--same_length] [--clamp_len C] [--force]
  scripts/import_reference.py adaptive-span STATE_DICT.pt OUT_DIR --vocab bytes \\
      --nlayers L --hid-sz D --inner-hid-sz F --nheads H --attn-span S --block-sz M \\
      [--adapt-span --adapt-span-ramp R --adapt-span-init Z] [--adapt-span-loss X] \\
      [--pers-mem-size N] [--force]

transformer-xl: STATE_DICT.pt is a state dict saved from kimiyoung/transformer-xl
`MemTransformerLM` (attn_type 0, div_val 1, no cutoffs, tied output weight; key names in
docs MODELS.md §9.1), or a dict wrapping one under 'model' or 'state_dict' (a leading
'module.' is stripped; a pickled nn.Module is accepted if its classes can be imported).
Every expected key is checked for presence and shape; extra keys are refused except
`pos_emb.inv_freq` (recomputed by the engine) and `crit.out_layers.0.weight` (must be
the tied embedding). Writes
  OUT_DIR/model.safetensors  float32, reference names, crit.out_layers.0.weight omitted
  OUT_DIR/config.yaml        data: {vocab: bytes}; model: {n_layer, ..., clamp_len}
  OUT_DIR/vocab.json         {"kind": "bytes", "symbols": [0, ..., 255]}

adaptive-span: STATE_DICT.pt is a facebookresearch/adaptive-span checkpoint
(`{'iter_no', 'model', 'optimizer', ...}` whose 'model' is the DataParallel state dict with
'module.' prefixes; a bare state dict works too) of `TransformerSeq` without adaptive I/O
(docs MODELS.md §2, §9.2). The `*._mask.mask_template` buffers must equal
linspace(1-S, 0, S) and are dropped; the `persistent_memory.adaptive_span.*` alias keys
must equal the layer's own and are dropped; every other key is checked for presence and
shape. Options use the reference's spellings (underscores, and --n_layer/--d_model/
--d_inner/--n_head/--tgt_len, are accepted too); --inner-hid-sz is ignored (d_inner 0)
with --pers-mem-size > 0. Writes
  OUT_DIR/model.safetensors  float32, reference names without 'module.', buffers, aliases
  OUT_DIR/config.yaml        data: {vocab: bytes}; model: {n_layer, n_head, d_model, d_head,
                             d_inner, tgt_len, attention: {type: adaptive_span, span, ...}}
  OUT_DIR/vocab.json         {"kind": "bytes", "symbols": [0, ..., 255]}

A non-empty OUT_DIR is refused unless --force. Errors: one line on stderr, exit 1.

Adding a converter: write `add_<name>_args(parser)` and `convert_<name>(args)` and list
them in CONVERTERS.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import safetensors_io  # noqa: E402

torch.set_num_threads(2)
BYTES_VOCAB = 256


class ImportError_(Exception):
    pass


def fail(msg):
    raise ImportError_(msg)


# ----------------------------------------------------------------------------- common
def load_state_dict(path):
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001
        fail(f"{path}: cannot load with torch.load: {e}")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        fail(f"{path}: not a state dict (expected a mapping name -> tensor)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def check_shapes(state, expected, allowed_extra, what):
    for key, shape in expected.items():
        if key not in state:
            fail(f"{what}: missing key {key} (expected shape {list(shape)})")
        actual = list(state[key].shape)
        if actual != list(shape):
            fail(f"{what}: {key}: expected shape {list(shape)}, got {actual}")
    for key in state:
        if key not in expected and key not in allowed_extra:
            fail(f"{what}: unexpected key {key} (shape {list(state[key].shape)}); "
                 "the model options do not match this state dict")


def prepare_out_dir(out_dir, force):
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            fail(f"{out_dir}: exists and is not a directory")
        if os.listdir(out_dir) and not force:
            fail(f"{out_dir}: directory is not empty (use --force to overwrite)")
    os.makedirs(out_dir, exist_ok=True)


def yaml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    text = str(v)
    if isinstance(v, float) and "e" in text and "." not in text:
        text = text.replace("e", ".0e")  # 1e-07 -> 1.0e-07 (a float under YAML 1.1 and 1.2)
    return text


def yaml_lines(body, indent):
    lines = []
    for k, v in body.items():
        if isinstance(v, dict):
            lines.append(f"{indent}{k}:")
            lines += yaml_lines(v, indent + "  ")
        else:
            lines.append(f"{indent}{k}: {yaml_value(v)}")
    return lines


def write_config(path, sections):
    """sections: {section: {key: scalar or nested dict}} -> simple block YAML."""
    lines = []
    for name, body in sections.items():
        lines.append(f"{name}:")
        lines += yaml_lines(body, "  ")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_vocab(path, kind):
    if kind != "bytes":
        fail(f"vocabulary kind {kind!r} is not supported")
    with open(path, "w") as f:
        json.dump({"kind": "bytes", "symbols": list(range(BYTES_VOCAB))}, f)
        f.write("\n")


# ----------------------------------------------------------------------------- transformer-xl
def add_transformer_xl_args(p):
    p.add_argument("state_dict", metavar="STATE_DICT.pt")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--vocab", choices=["bytes"], required=True)
    for name in ("n_layer", "n_head", "d_model", "d_head", "d_inner", "tgt_len", "mem_len"):
        p.add_argument("--" + name, type=int, required=True)
    p.add_argument("--pre_lnorm", action="store_true")
    p.add_argument("--same_length", action="store_true")
    p.add_argument("--clamp_len", type=int, default=-1)
    p.add_argument("--force", action="store_true", help="overwrite a non-empty OUT_DIR")


def transformer_xl_expected(a, vocab):
    D, H, Dh, Fi = a.d_model, a.n_head, a.d_head, a.d_inner
    exp = {"r_w_bias": (H, Dh), "r_r_bias": (H, Dh),
           "word_emb.emb_layers.0.weight": (vocab, D)}
    for l in range(a.n_layer):
        p = f"layers.{l}."
        exp.update({
            p + "dec_attn.qkv_net.weight": (3 * H * Dh, D),
            p + "dec_attn.o_net.weight": (D, H * Dh),
            p + "dec_attn.layer_norm.weight": (D,),
            p + "dec_attn.layer_norm.bias": (D,),
            p + "dec_attn.r_net.weight": (H * Dh, D),
            p + "pos_ff.CoreNet.0.weight": (Fi, D),
            p + "pos_ff.CoreNet.0.bias": (Fi,),
            p + "pos_ff.CoreNet.3.weight": (D, Fi),
            p + "pos_ff.CoreNet.3.bias": (D,),
            p + "pos_ff.layer_norm.weight": (D,),
            p + "pos_ff.layer_norm.bias": (D,),
        })
    exp["crit.out_layers.0.bias"] = (vocab,)
    return exp


def convert_transformer_xl(a):
    what = a.state_dict
    for name in ("n_layer", "n_head", "d_model", "d_head", "d_inner", "tgt_len"):
        if getattr(a, name) <= 0:
            fail(f"--{name} must be positive, got {getattr(a, name)}")
    if a.mem_len < 0:
        fail(f"--mem_len must be >= 0, got {a.mem_len}")
    state = load_state_dict(a.state_dict)
    emb = state.get("word_emb.emb_layers.0.weight")
    if emb is not None and emb.dim() == 2 and emb.shape[0] != BYTES_VOCAB:
        fail(f"{what}: vocabulary does not fit: word_emb.emb_layers.0.weight has "
             f"{emb.shape[0]} rows, --vocab bytes needs {BYTES_VOCAB}")
    expected = transformer_xl_expected(a, BYTES_VOCAB)
    check_shapes(state, expected, {"pos_emb.inv_freq", "crit.out_layers.0.weight"}, what)
    out_w = state.get("crit.out_layers.0.weight")
    if out_w is not None:
        if list(out_w.shape) != list(emb.shape):
            fail(f"{what}: crit.out_layers.0.weight: expected shape {list(emb.shape)}, "
                 f"got {list(out_w.shape)}")
        if not torch.equal(out_w, emb):
            fail(f"{what}: crit.out_layers.0.weight differs from word_emb.emb_layers.0.weight "
                 "(untied output layer is not supported)")
    tensors = {}
    for key in expected:
        t = state[key]
        if not t.is_floating_point():
            fail(f"{what}: {key}: expected a floating-point tensor, got {t.dtype}")
        t = t.detach().to(torch.float32).contiguous()
        if not torch.isfinite(t).all():
            fail(f"{what}: {key}: contains NaN or Inf")
        tensors[key] = t
    prepare_out_dir(a.out_dir, a.force)
    safetensors_io.save_file(os.path.join(a.out_dir, "model.safetensors"), tensors,
                             metadata={"format": "txl", "model": "transformer-xl",
                                       "source": "kimiyoung MemTransformerLM state_dict",
                                       "tied": "crit.out_layers.0.weight=word_emb.emb_layers.0.weight"})
    write_config(os.path.join(a.out_dir, "config.yaml"), {
        "data": {"vocab": "bytes"},
        "model": {"n_layer": a.n_layer, "n_head": a.n_head, "d_model": a.d_model,
                  "d_head": a.d_head, "d_inner": a.d_inner, "dropout": 0.0, "dropatt": 0.0,
                  "tgt_len": a.tgt_len, "mem_len": a.mem_len, "pre_lnorm": a.pre_lnorm,
                  "same_length": a.same_length, "clamp_len": a.clamp_len},
    })
    write_vocab(os.path.join(a.out_dir, "vocab.json"), a.vocab)
    n = sum(t.numel() for t in tensors.values())
    print(f"import_reference: transformer-xl: {len(tensors)} tensors, {n} parameters -> {a.out_dir}")


# ----------------------------------------------------------------------------- adaptive-span
def add_names(p, names, **kw):
    """One option under several names, each as --foo-bar and --foo_bar."""
    flags = []
    for n in names:
        for f in ("--" + n.replace("_", "-"), "--" + n.replace("-", "_")):
            if f not in flags:
                flags.append(f)
    p.add_argument(*flags, dest=names[0].replace("-", "_"), **kw)


def add_adaptive_span_args(p):
    p.add_argument("state_dict", metavar="STATE_DICT.pt")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--vocab", choices=["bytes"], required=True)
    add_names(p, ["nlayers", "n_layer"], type=int, required=True, metavar="L")
    add_names(p, ["hid-sz", "d_model"], type=int, required=True, metavar="D")
    add_names(p, ["inner-hid-sz", "d_inner"], type=int, default=None, metavar="F",
              help="feed-forward size (required unless --pers-mem-size > 0)")
    add_names(p, ["nheads", "n_head"], type=int, required=True, metavar="H")
    add_names(p, ["attn-span"], type=int, required=True, metavar="S")
    add_names(p, ["block-sz", "tgt_len"], type=int, required=True, metavar="M")
    add_names(p, ["adapt-span"], action="store_true")
    add_names(p, ["adapt-span-ramp"], type=int, default=32, metavar="R")
    add_names(p, ["adapt-span-init"], type=float, default=0.0, metavar="Z")
    add_names(p, ["adapt-span-loss"], type=float, default=0.0, metavar="X",
              help="span-loss coefficient written to the config (not in a state dict; default 0)")
    add_names(p, ["adapt-span-cache"], action="store_true",
              help="accepted for command-line compatibility; the config always says cache: true")
    add_names(p, ["pers-mem-size"], type=int, default=0, metavar="N")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty OUT_DIR")


def adaptive_span_expected(a, vocab):
    """Reference key order (models.py), without buffers and alias keys."""
    D, H, S, N, Fi = a.hid_sz, a.nheads, a.attn_span, a.pers_mem_size, a.inner_hid_sz
    Dh = D // H
    exp = {"key_pe": (1, Dh, S), "in_emb.weight": (vocab, D), "out_emb.weight": (vocab, D),
           "out_emb.bias": (vocab,)}
    for l in range(a.nlayers):
        p = f"layers.{l}."
        if a.adapt_span:
            exp[p + "attn.attn.adaptive_span._mask.current_val"] = (H, 1, 1)
        if N > 0:
            exp[p + "attn.attn.persistent_memory.key"] = (H, Dh, N)
            exp[p + "attn.attn.persistent_memory.val"] = (H, N, Dh)
        for proj in ("query", "out", "val", "key"):
            exp[p + f"attn.proj_{proj}.weight"] = (D, D)
        exp[p + "norm1.weight"] = (D,)
        exp[p + "norm1.bias"] = (D,)
        if N == 0:
            exp.update({p + "ff.fc1.weight": (Fi, D), p + "ff.fc1.bias": (Fi,),
                        p + "ff.fc2.weight": (D, Fi), p + "ff.fc2.bias": (D,),
                        p + "norm2.weight": (D,), p + "norm2.bias": (D,)})
    return exp


def strip_span_buffers(state, span, what):
    """Verifies and removes mask_template buffers and persistent_memory.adaptive_span
    alias keys; returns the remaining state dict."""
    template = torch.linspace(1 - span, 0, steps=span)
    out = {}
    for key, t in state.items():
        if key.endswith("._mask.mask_template"):
            if list(t.shape) != [span]:
                fail(f"{what}: {key}: expected shape [{span}] (--attn-span), got {list(t.shape)}")
            if not torch.equal(t.detach().to(torch.float32), template):
                fail(f"{what}: {key}: is not linspace(1-S, 0, S) for S = {span}")
            continue
        if ".persistent_memory.adaptive_span." in key:
            own = key.replace(".persistent_memory.adaptive_span.", ".adaptive_span.")
            if own not in state:
                fail(f"{what}: alias {key} without {own}")
            if state[own].shape != t.shape or not torch.equal(state[own], t):
                fail(f"{what}: alias {key} differs from {own}")
            continue
        out[key] = t
    return out


def convert_adaptive_span(a):
    what = a.state_dict
    for name, flag in (("nlayers", "--nlayers"), ("hid_sz", "--hid-sz"), ("nheads", "--nheads"),
                       ("attn_span", "--attn-span"), ("block_sz", "--block-sz"),
                       ("adapt_span_ramp", "--adapt-span-ramp")):
        if getattr(a, name) <= 0:
            fail(f"{flag} must be positive, got {getattr(a, name)}")
    if a.pers_mem_size < 0:
        fail(f"--pers-mem-size must be >= 0, got {a.pers_mem_size}")
    if a.hid_sz % a.nheads:
        fail(f"--hid-sz {a.hid_sz} is not a multiple of --nheads {a.nheads}")
    if a.pers_mem_size > 0:
        a.inner_hid_sz = 0  # no feed-forward sublayer with persistent memory
    elif a.inner_hid_sz is None or a.inner_hid_sz <= 0:
        fail("--inner-hid-sz must be given (positive) unless --pers-mem-size > 0")
    state = strip_span_buffers(load_state_dict(a.state_dict), a.attn_span, what)
    emb = state.get("in_emb.weight")
    if emb is not None and emb.dim() == 2 and emb.shape[0] != BYTES_VOCAB:
        fail(f"{what}: vocabulary does not fit: in_emb.weight has {emb.shape[0]} rows, "
             f"--vocab bytes needs {BYTES_VOCAB}")
    if any(k.startswith("in_emb.") and k != "in_emb.weight" for k in state):
        fail(f"{what}: adaptive input/output (--adapt-io) checkpoints are not supported")
    span_key = "layers.0.attn.attn.adaptive_span._mask.current_val"
    if span_key in state and not a.adapt_span:
        fail(f"{what}: the state dict has adaptive-span parameters ({span_key}); pass --adapt-span")
    pers_key = "layers.0.attn.attn.persistent_memory.key"
    if pers_key in state and a.pers_mem_size == 0:
        fail(f"{what}: the state dict has persistent memory ({pers_key}, shape "
             f"{list(state[pers_key].shape)}); pass --pers-mem-size")
    expected = adaptive_span_expected(a, BYTES_VOCAB)
    check_shapes(state, expected, set(), what)
    tensors = {}
    for key in expected:
        t = state[key]
        if not t.is_floating_point():
            fail(f"{what}: {key}: expected a floating-point tensor, got {t.dtype}")
        t = t.detach().to(torch.float32).contiguous()
        if not torch.isfinite(t).all():
            fail(f"{what}: {key}: contains NaN or Inf")
        tensors[key] = t
    prepare_out_dir(a.out_dir, a.force)
    safetensors_io.save_file(os.path.join(a.out_dir, "model.safetensors"), tensors,
                             metadata={"format": "txl", "model": "adaptive-span",
                                       "source": "facebookresearch/adaptive-span TransformerSeq "
                                                 "state_dict"})
    write_config(os.path.join(a.out_dir, "config.yaml"), {
        "data": {"vocab": "bytes"},
        "model": {"n_layer": a.nlayers, "n_head": a.nheads, "d_model": a.hid_sz,
                  "d_head": a.hid_sz // a.nheads, "d_inner": a.inner_hid_sz,
                  "tgt_len": a.block_sz,
                  "attention": {"type": "adaptive_span", "span": a.attn_span,
                                "adapt_span": a.adapt_span, "ramp": a.adapt_span_ramp,
                                "init": a.adapt_span_init, "span_loss": a.adapt_span_loss,
                                "cache": True, "pers_mem_size": a.pers_mem_size}},
    })
    write_vocab(os.path.join(a.out_dir, "vocab.json"), a.vocab)
    n = sum(t.numel() for t in tensors.values())
    print(f"import_reference: adaptive-span: {len(tensors)} tensors, {n} parameters -> {a.out_dir}")


# ----------------------------------------------------------------------------- CLI
CONVERTERS = {
    # name: (help, add_args, convert)
    "transformer-xl": ("kimiyoung/transformer-xl MemTransformerLM state dict",
                       add_transformer_xl_args, convert_transformer_xl),
    "adaptive-span": ("facebookresearch/adaptive-span TransformerSeq checkpoint",
                      add_adaptive_span_args, convert_adaptive_span),
}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="import_reference.py",
                                 description="Convert reference checkpoints into a txl model directory.")
    sub = ap.add_subparsers(dest="kind", required=True)
    for name, (help_text, add_args, convert) in CONVERTERS.items():
        p = sub.add_parser(name, help=help_text)
        add_args(p)
        p.set_defaults(convert=convert)
    a = ap.parse_args(argv)
    try:
        a.convert(a)
    except ImportError_ as e:
        print(f"import_reference.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
