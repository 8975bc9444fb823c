#!/usr/bin/env bash
# Builds a cachet binary whose libtorch wrapper (gotch's libtch) is a separate shared library, so the same
# binary runs on another libtorch, such as a GPU machine's PyTorch CUDA build: there, libtch.py compiles
# libtch.so against that libtorch's headers (see run-gpu.sh).
#
#   toolchain/cuda/build.sh OUTDIR
#
# Writes OUTDIR/cachet (dynamically linked against libtch.so), OUTDIR/used-ops.txt (the libtch ops it
# calls), OUTDIR/libtch/ (gotch's wrapper sources) and OUTDIR/lib/libtch.so built against the toolchain's
# own libtorch, with which the binary also runs here (CPU). Runs through scripts/in-env.sh.
set -euo pipefail
out=$(realpath -m "${1:?usage: toolchain/cuda/build.sh OUTDIR}")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
source scripts/env.sh
mkdir -p "$out/lib"
modcache=$(go env GOMODCACHE)
gotch="$modcache/github.com/sugarme/gotch@v0.9.1"
[ -d "$gotch" ] || scripts/in-env.sh go mod download github.com/sugarme/gotch

# 1. Which libtch ops the binary calls.
scripts/in-env.sh go build -o "$out/cachet-static" ./cmd/cachet
# cgo's Go-side call stubs (libtch._Cfunc_atg_*) survive only where something calls them.
go tool nm "$out/cachet-static" | sed -n 's/.*libtch\._Cfunc_\(atg_[A-Za-z0-9_]*\)\.abi0$/\1/p' | sort -u >"$out/used-ops.txt"
rm -f "$out/cachet-static"
echo "build.sh: the binary calls $(wc -l <"$out/used-ops.txt") libtch ops" >&2

# 2. gotch with libtch as an external library: its C++ source leaves the package, its link flags name -ltch.
rm -rf "$out/gotch" "$out/libtch"
cp -r "$gotch" "$out/gotch"
chmod -R u+w "$out/gotch"
cp -r "$out/gotch/libtch" "$out/libtch"
rm "$out/gotch/libtch/torch_api.cpp"
cat >"$out/gotch/libtch/lib.go" <<EOF
package libtch

// #cgo LDFLAGS: -L$out/lib -ltch -Wl,-rpath,\$ORIGIN/lib
// #cgo CFLAGS: -I\${SRCDIR} -O3 -Wno-deprecated-declarations
import "C"
EOF

# 3. libtch.so for this machine's libtorch, then the binary against it.
scripts/in-env.sh python3 "$here/libtch.py" --src "$out/libtch" --used "$out/used-ops.txt" \
	--include /usr/include --include /usr/include/torch/csrc/api/include \
	--libdir /usr/lib/x86_64-linux-gnu --out "$out/lib/libtch.so"
cp go.mod "$out/go.mod"
echo "replace github.com/sugarme/gotch => $out/gotch" >>"$out/go.mod"
cp go.sum "$out/go.sum"
scripts/in-env.sh \
	go build -modfile "$out/go.mod" -ldflags "-s -w" -o "$out/cachet" ./cmd/cachet # no symbol table or DWARF: it travels
echo "build.sh: wrote $out/cachet (needs $(readelf -d "$out/cachet" | grep -o 'lib[a-z_]*\.so[.0-9]*' | tr '\n' ' '))" >&2

# 4. The bundle gpu-train.sh reads, xz-compressed to travel: the binary, libtch's sources, the ops list and
#    the Fashion-MNIST files (Go skips the directory: its name starts with '_').
data=${CACHET_DATA:-$CACHET_ROOTFS/usr/share/datasets/fashion-mnist}
rm -rf "$out/bundle" && mkdir -p "$out/bundle/data"
xz -T0 -6 -c "$out/cachet" >"$out/bundle/cachet.xz"
cp -r "$out/libtch" "$out/bundle/libtch" && rm -f "$out/bundle/libtch/"*.md "$out/bundle/libtch/"*.go
cp "$out/used-ops.txt" "$out/bundle/"
for f in "$data"/*.gz; do zcat "$f" | xz -T0 -9 -c >"$out/bundle/data/$(basename "$f" .gz).xz"; done
echo "build.sh: bundle $out/bundle ($(du -sh "$out/bundle" | cut -f1)); copy it into the checkout as _gpu/ for the GPU machine" >&2
