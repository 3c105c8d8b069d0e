#!/usr/bin/python3
"""Convert reference PyTorch checkpoints into a txl model directory.

Usage:
  scripts/import_reference.py transformer-xl STATE_DICT.pt OUT_DIR --vocab bytes \\
      --n_layer N --n_head H --d_model D --d_head Dh --d_inner F --tgt_len T --mem_len M \\
      [--pre_lnorm] [--same_length] [--clamp_len C] [--force]

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
    return str(v)


def write_config(path, sections):
    """sections: {section: {key: scalar}} -> simple block YAML."""
    lines = []
    for name, body in sections.items():
        lines.append(f"{name}:")
        lines += [f"  {k}: {yaml_value(v)}" for k, v in body.items()]
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


# ----------------------------------------------------------------------------- CLI
CONVERTERS = {
    # name: (help, add_args, convert)
    "transformer-xl": ("kimiyoung/transformer-xl MemTransformerLM state dict",
                       add_transformer_xl_args, convert_transformer_xl),
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
