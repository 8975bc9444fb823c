#!/usr/bin/env bash
# Regenerates the PyTorch goldens of the model parity and converter tests (model/testdata/*.safetensors,
# model/testdata/dit_*.pt) with model/testdata/reference.py, run where the toolchain lives (the trixie
# rootfs on Debian 12) with Debian's python3-torch 2.6. The outputs are committed: `make test` needs no Python.
#   scripts/goldens.sh            regenerate in place
#   scripts/goldens.sh DIR        write them to DIR instead (to compare)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
out=$(realpath -m "${1:-$REPO_ROOT/model/testdata}")
mkdir -p "$out"
"$REPO_ROOT/scripts/reference-env.sh"
say "writing the PyTorch goldens to $out"
in_env /usr/bin/env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python3 "$REPO_ROOT/model/testdata/reference.py" "$out"
ls -l "$out"/*.safetensors "$out"/*.pt >&2
