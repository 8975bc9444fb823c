#!/usr/bin/env bash
# gotch v0.9.1 hard-codes CUDA link flags (-lcuda -lcudart ... -ltorch_cuda) in libtch/lib.go.
# On a CPU-only libtorch those libraries don't exist; empty shared libraries with the same names
# satisfy the linker, and -Wl,--as-needed keeps them out of the binary's dependencies.
set -euo pipefail
out=${1:?usage: stubs.sh OUTDIR}
mkdir -p "$out"
src=$(mktemp --suffix=.c)
trap 'rm -f "$src"' EXIT
echo 'void cachet_cuda_stub(void) {}' >"$src"
for lib in cuda cudart cublas cudnn caffe2_nvrtc nvrtc-builtins nvrtc nvToolsExt c10_cuda torch_cuda; do
	gcc -shared -fPIC -o "$out/lib$lib.so" "$src"
done
