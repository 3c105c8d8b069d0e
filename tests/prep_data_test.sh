#!/usr/bin/env bash
# Tests scripts/prep_data.py on small synthetic archives shaped like the real ones
# (one member named "enwik8" / "text8"): split sizes with a small --test-size, the raw
# txl files, the reference formats (enwik8: byte 10 as a real newline; text8: ' ' as
# '_', parts stripped), prep.json, and the errors. No network; not get_data.sh's download.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prep="$root/scripts/prep_data.py"
py=/usr/bin/python3
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

# enwik8: 2.5 MB of pseudo-random bytes (every value 0..255, ~10k newlines); test size
# 500000 makes the 1.5 MB train part span two of prep_data.py's 1 MiB write chunks.
"$py" - <<'PY'
import random, zipfile
rng = random.Random(1)
data = rng.randbytes(2_500_000)
data = b"A\nB" + data[3:]  # a known start: bytes 65, 10, 66
with zipfile.ZipFile("enwik8.zip", "w", zipfile.ZIP_DEFLATED) as zf:
    zf.writestr("enwik8", data)
open("enwik8.bin", "wb").write(data)
PY
"$py" "$prep" enwik8 enwik8.zip out8 --test-size 500000 >/dev/null

"$py" - <<'PY'
import hashlib, json
data = open("enwik8.bin", "rb").read()
n = 500000
want = {"train": data[:-2 * n], "valid": data[-2 * n:-n], "test": data[-n:]}
assert [len(v) for v in want.values()] == [1_500_000, 500_000, 500_000]
info = json.load(open("out8/prep.json"))
assert info["dataset"] == "enwik8" and info["member_bytes"] == len(data) and info["test_size"] == n
for name, part in want.items():
    raw = open(f"out8/{name}.txt", "rb").read()
    assert raw == part, f"{name}.txt differs from the slice"
    ref = open(f"out8/{name}.ref.txt", "rb").read()
    # awd-lstm-lm prep_enwik8.py, verbatim logic
    oracle = " ".join([str(c) if c != ord("\n") else "\n" for c in part]).encode()
    assert ref == oracle, f"{name}.ref.txt differs from the reference format"
    assert ref.count(b"\n") == part.count(10)
    for kind, path in (("txl", f"out8/{name}.txt"), ("reference", f"out8/{name}.ref.txt")):
        body = open(path, "rb").read()
        entry = info["splits"][name][kind]
        assert entry["bytes"] == len(body) and entry["sha256"] == hashlib.sha256(body).hexdigest(), path
assert open("out8/train.ref.txt", "rb").read(8) == b"65 \n 66 ", "byte 10 must be a real newline"
print("enwik8 ok")
PY

# text8: lowercase words separated by single spaces, starting with a space like the
# real file; valid starts and test ends with a space to exercise .strip().
"$py" - <<'PY'
import random, zipfile
rng = random.Random(2)
words = []
while sum(len(w) + 1 for w in words) < 5000:
    words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 9))))
text = " " + " ".join(words)
text = text[:4800]
text = text[:4600] + " " + text[4601:4799] + " "  # valid (test size 100) starts with ' ', test ends with ' '
assert len(text) == 4800
with zipfile.ZipFile("text8.zip", "w", zipfile.ZIP_DEFLATED) as zf:
    zf.writestr("text8", text)
open("text8.bin", "w").write(text)
PY
"$py" "$prep" text8 text8.zip out_t8 --test-size 100 >/dev/null

"$py" - <<'PY'
import json
text = open("text8.bin").read()
n = 100
parts = {"train": text[:-2 * n], "valid": text[-2 * n:-n], "test": text[-n:]}
info = json.load(open("out_t8/prep.json"))
for name, part in parts.items():
    stripped = part.strip()
    raw = open(f"out_t8/{name}.txt", "rb").read().decode()
    assert raw == stripped, f"{name}.txt must be the stripped part"
    ref = open(f"out_t8/{name}.ref.txt").read()
    # transformer-xl prep_text8.py, verbatim logic
    assert ref == " ".join(["_" if c == " " else c for c in part.strip()]), name
    assert " " not in ref[0::2] and ref[1::2] == " " * (len(ref) // 2), name
    assert info["splits"][name]["txl"]["bytes"] == len(stripped)
assert len(open("out_t8/train.txt").read()) == 4599  # 4600 minus the leading space
assert len(open("out_t8/valid.txt").read()) == 99 and len(open("out_t8/test.txt").read()) == 99
assert "_" in open("out_t8/train.ref.txt").read()
print("text8 ok")
PY

# The hidden option stays hidden; errors are one clear line and a non-zero exit.
if "$py" "$prep" --help | grep -q -- --test-size; then echo "FAIL: --test-size shows in --help" >&2; exit 1; fi
expect_error() {  # pattern, command...
  local pattern="$1"; shift
  if out="$("$@" 2>&1)"; then echo "FAIL: '$*' succeeded" >&2; exit 1; fi
  grep -q -- "$pattern" <<<"$out" || { echo "FAIL: '$*' said: $out (wanted $pattern)" >&2; exit 1; }
}
expect_error "has no member 'enwik8'" "$py" "$prep" enwik8 text8.zip bad --test-size 100
expect_error "need more than" "$py" "$prep" text8 text8.zip bad --test-size 2400
expect_error "does not exist" "$py" "$prep" enwik8 missing.zip bad
echo "not a zip" > junk.zip
expect_error "not a valid zip" "$py" "$prep" enwik8 junk.zip bad
expect_error "usage" bash "$root/scripts/get_data.sh" wikitext
echo "prep_data_test: all checks passed"
