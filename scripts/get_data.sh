#!/usr/bin/env bash
# Downloads enwik8 or text8 and prepares the standard 90M/5M/5M split for txl.
#
# Usage: scripts/get_data.sh enwik8|text8 [DATA_DIR]      (DATA_DIR defaults to data/)
#
# Fetches DATA_DIR/<name>.zip from mattmahoney.net with curl or wget (skipped when the
# zip is already there), then runs scripts/prep_data.py into DATA_DIR/<name>/: raw
# train/valid/test.txt for txl, reference-format *.ref.txt and prep.json. It does not
# build vocabularies or touch anything outside DATA_DIR.
set -euo pipefail

usage() { echo "usage: $0 enwik8|text8 [DATA_DIR]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
name="$1"
case "$name" in
  enwik8|text8) ;;
  *) usage ;;
esac
data_dir="${2:-data}"
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
url="http://mattmahoney.net/dc/${name}.zip"
zip="${data_dir}/${name}.zip"
out="${data_dir}/${name}"

download() {  # url dest: to a temporary name first, so an interrupted download never looks complete
  local tmp="$2.part"
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 3 -o "$tmp" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -O "$tmp" "$1"
  else
    echo "get_data.sh: error: neither curl nor wget is installed" >&2
    exit 1
  fi
  mv "$tmp" "$2"
}

mkdir -p "$data_dir"
if [[ -s "$zip" ]]; then
  echo "get_data.sh: $zip already present, not downloading"
else
  echo "get_data.sh: downloading $url -> $zip"
  download "$url" "$zip"
fi
/usr/bin/python3 "$script_dir/prep_data.py" "$name" "$zip" "$out"
echo "get_data.sh: done; train with data.train: $out/train.txt, data.valid: $out/valid.txt, data.test: $out/test.txt"
