#!/usr/bin/python3
"""Prepare enwik8 or text8 from the downloaded zip exactly like the reference repos.

Usage: prep_data.py enwik8|text8 ZIP OUT_DIR

Splits as awd-lstm-lm prep_enwik8.py / transformer-xl prep_text8.py (MODELS.md §8.1,
§8.2): train = data[:-10M], valid = data[-10M:-5M], test = data[-5M:] (text8 parts are
.strip()-ped). Writes, in OUT_DIR: train.txt/valid.txt/test.txt (raw bytes, for txl with
vocab "bytes" or "chars"), train.ref.txt/... (the reference repos' token format, for
comparing with them) and prep.json (sizes and sha256). Not a downloader (get_data.sh)
and not a vocab builder. Standard library only.
"""
import argparse
import hashlib
import json
import os
import sys
import zipfile

CHUNK = 1 << 20  # bytes converted per write, keeps memory flat on 100 MB inputs
NAMES = ("train", "valid", "test")


def fail(msg):
    sys.exit("prep_data.py: error: " + msg)


def read_member(zip_path, member):
    """The single archive member `member` (the real archives hold just that)."""
    if not os.path.isfile(zip_path):
        fail(f"{zip_path} does not exist")
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            if member not in names:
                fail(f"{zip_path} has no member '{member}' (members: {', '.join(names) or 'none'})")
            return zf.read(member)
    except zipfile.BadZipFile as e:
        fail(f"{zip_path} is not a valid zip file ({e}); delete it and download again")


def split_parts(data, test_size):
    """train = data[:-2n], valid = data[-2n:-n], test = data[-n:] (the references' slicing)."""
    n = test_size
    if len(data) <= 2 * n:
        fail(f"the data has {len(data)} bytes; need more than 2 * test size = {2 * n}")
    return data[: -2 * n], data[-2 * n : -n], data[-n:]


def enwik8_ref_table():
    # awd-lstm-lm: str(c) for every byte except 10, which stays a real newline.
    return [("\n" if b == 10 else str(b)).encode("ascii") for b in range(256)]


def text8_ref_table():
    # transformer-xl prep_text8.py: every char as itself, ' ' -> '_'.
    return [(b"_" if b == 32 else bytes([b])) for b in range(256)]


def write_ref(path, part, table):
    """' '.join(table[b] for b in part), written chunk by chunk."""
    with open(path, "wb") as f:
        for start in range(0, len(part), CHUNK):
            if start:
                f.write(b" ")
            f.write(b" ".join(map(table.__getitem__, part[start : start + CHUNK])))


def file_info(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return {"file": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": h.hexdigest()}


def prepare_parts(dataset, data, test_size):
    parts = split_parts(data, test_size)
    if dataset == "text8":
        # The reference decodes utf-8 then .strip()s each part; text8 is ASCII.
        parts = tuple(p.decode("utf-8").strip().encode("utf-8") for p in parts)
        return parts, text8_ref_table()
    return parts, enwik8_ref_table()


def main():
    ap = argparse.ArgumentParser(description="Prepare enwik8 or text8 (90M/5M/5M split) for txl.")
    ap.add_argument("dataset", choices=["enwik8", "text8"])
    ap.add_argument("zip", help="the downloaded enwik8.zip or text8.zip")
    ap.add_argument("out_dir", help="where train/valid/test files and prep.json go")
    ap.add_argument("--test-size", type=int, default=5_000_000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.test_size < 1:
        fail("--test-size must be >= 1")

    data = read_member(args.zip, args.dataset)
    print(f"Length of {args.dataset}: {len(data)}")
    parts, table = prepare_parts(args.dataset, data, args.test_size)
    os.makedirs(args.out_dir, exist_ok=True)
    info = {"dataset": args.dataset, "source": file_info(args.zip), "member_bytes": len(data),
            "test_size": args.test_size, "splits": {}}
    for name, part in zip(NAMES, parts):
        raw_path = os.path.join(args.out_dir, name + ".txt")
        ref_path = os.path.join(args.out_dir, name + ".ref.txt")
        print(f"{name}.txt will have {len(part)} bytes")
        with open(raw_path, "wb") as f:
            f.write(part)
        write_ref(ref_path, part, table)
        info["splits"][name] = {"txl": file_info(raw_path), "reference": file_info(ref_path)}
    info["notes"] = ("*.txt: raw bytes for txl (vocab bytes or chars). *.ref.txt: the reference repos' "
                     "format (enwik8: decimal byte values space-separated, byte 10 as a real newline; "
                     "text8: chars space-separated, ' ' as '_'). text8 parts are .strip()-ped.")
    with open(os.path.join(args.out_dir, "prep.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out_dir}/{{train,valid,test}}.txt, *.ref.txt and prep.json")


if __name__ == "__main__":
    main()
