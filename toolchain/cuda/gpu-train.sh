#!/usr/bin/env bash
# Trains the base and the adapters on a GPU machine that has PyTorch (CUDA) but no Go, within a fixed
# wall-time budget, from the bundle that toolchain/cuda/build.sh made on a build machine.
#
#   toolchain/cuda/gpu-train.sh BUNDLE OUTDIR [SECONDS]
#
# 1. Compiles gotch's libtch against the machine's libtorch (libtch.py) and checks that the binary sees CUDA.
# 2. `train base --init-from weights/base.safetensors` for about half the budget (BASE_ARGS adds or overrides
#    flags), then `convert f16`
#    (TRAIN_BASE=0 skips this and keeps the shipped base). BASE_INIT= (empty) trains a base from scratch
#    instead, e.g. a larger one: BASE_INIT= BASE_ARGS="--width 384 --depth 8 --lr 1e-3 --warmup 500".
# 3. `train adapters --init-from weights/adapters.safetensors` against that base for the rest of the budget
#    (ADAPTER_ARGS likewise; ADAPTER_INIT= starts fresh adapters, which a base of another shape needs).
#    DEVICE=cpu with LIBTORCH_LIB/LIBTORCH_INCLUDE is a dry run on a CPU machine.
# Each job's --steps is sized from a short probe of its rate, so its cosine schedule ends inside the
# budget. Results land in OUTDIR as they are made: weights, CSV logs and log.txt.
set -euo pipefail
bundle=$(realpath "${1:?usage: gpu-train.sh BUNDLE OUTDIR [SECONDS]}")
out=$(realpath -m "${2:?usage: gpu-train.sh BUNDLE OUTDIR [SECONDS]}")
budget=${3:-480}
began=$(date +%s)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
mkdir -p "$out"
log() { echo "[$(($(date +%s) - began)) s] $*" | tee -a "$out/log.txt" >&2; }
left() { echo $((budget - ($(date +%s) - began))); }

py=${PYTHON:-python3}
device=${DEVICE:-cuda}
if [ -n "${LIBTORCH_LIB:-}" ]; then # another libtorch (a CPU dry run of this script): LIBTORCH_INCLUDE too
	incs=(--include "$LIBTORCH_INCLUDE" --include "$LIBTORCH_INCLUDE/torch/csrc/api/include")
	libdir=$LIBTORCH_LIB abi=1 libs=${LIBS:-torch,torch_cpu,c10}
else
	torch=$($py -c 'import os, torch; print(os.path.dirname(torch.__file__))')
	incs=(--include "$torch/include" --include "$torch/include/torch/csrc/api/include")
	libdir=$torch/lib libs=${LIBS:-torch,torch_cpu,c10,torch_cuda,c10_cuda}
	abi=$($py -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
	log "torch $($py -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'), C++11 ABI $abi"
fi

# The bundle travels xz-compressed; the data reader wants gzip IDX files.
$py - "$bundle" "$work" <<'EOF'
import gzip, lzma, os, shutil, sys
bundle, work = sys.argv[1:]
shutil.copyfileobj(lzma.open(f"{bundle}/cachet.xz"), open(f"{work}/cachet", "wb"))
os.chmod(f"{work}/cachet", 0o755)
os.makedirs(f"{work}/data")
for name in os.listdir(f"{bundle}/data"):
    with lzma.open(f"{bundle}/data/{name}") as src, gzip.open(f"{work}/data/{name[:-3]}.gz", "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst)
EOF
mkdir -p "$work/lib"
$py "$here/libtch.py" --src "$bundle/libtch" --used "$bundle/used-ops.txt" \
	"${incs[@]}" --libdir "$libdir" --libs "$libs" --cxxflags="-D_GLIBCXX_USE_CXX11_ABI=$abi" \
	--out "$work/lib/libtch.so" 2>&1 | tee -a "$out/log.txt"
bin="$work/cachet"
export TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 # TF32 matrix products: the training's precision need is far looser
"$bin" version | tee -a "$out/log.txt"

# run JOB NAME SECONDS ARGS...: probes the job's rate for a few seconds, then trains it with --steps sized to
# SECONDS; its CSV log and weights go to OUTDIR/NAME.*.
run() {
	local job=$1 name=$2 secs=$3
	shift 3
	local p="$work/probe-$name"
	mkdir -p "$p"
	"$bin" train "$job" "$@" --steps 1000000 --max-time "${PROBE:-25s}" --out "$p/w.safetensors" --checkpoint "$p/ck.safetensors" \
		--log "$p/log.csv" --checkpoint-every 1h >"$p/stderr" 2>&1 || { tail -c 2000 "$p/stderr" | tr '\r' '\n' | tail -5 >&2; return 1; }
	local rate
	rate=$(awk -F, 'NR > 1 && $2 != "" {s[++n] = $1; t[n] = $6} END {i = int(n / 3) + 1; if (n < 3 || t[n] <= t[i]) print 0; else printf "%.2f", (s[n] - s[i]) / (t[n] - t[i])}' "$p/log.csv")
	local steps
	steps=$(awk -v r="$rate" -v s="$secs" 'BEGIN {printf "%d", r * s}')
	log "$name: $rate steps/s in the probe; training $steps steps in ~$secs s"
	[ "$steps" -gt 20 ] || { log "$name: too few steps; skipped"; return 1; }
	"$bin" train "$job" "$@" --steps "$steps" --out "$work/$name.safetensors" --checkpoint "$work/$name.ckpt.safetensors" \
		--log "$out/$name.csv" >"$work/$name.stderr" 2>&1 || { tail -c 2000 "$work/$name.stderr" | tr '\r' '\n' | tail -5 >&2; return 1; }
	tail -c 400 "$work/$name.stderr" | tr '\r' '\n' | grep -v '^$' | tail -2 | tee -a "$out/log.txt"
}

common=(--device "$device" --torch-threads "${THREADS:-4}" --data "$work/data")
# init FLAGVALUE: --init-from and the value, or nothing when the value is empty (train from scratch).
init() { [ -z "$1" ] || printf -- '--init-from\n%s\n' "$1"; }
mapfile -t base_init < <(init "${BASE_INIT-weights/base.safetensors}")
mapfile -t adapter_init < <(init "${ADAPTER_INIT-weights/adapters.safetensors}")
base=weights/base.safetensors
if [ "${TRAIN_BASE:-1}" = 1 ]; then # TRAIN_BASE=0: the adapters only, for the shipped base
	run base base $(($(left) * 55 / 100 - 30)) "${common[@]}" "${base_init[@]}" --batch 512 --lr 3e-4 --warmup 300 ${BASE_ARGS:-}
	"$bin" convert f16 --in "$work/base.safetensors" --out "$out/base.safetensors" | tee -a "$out/log.txt"
	base=$out/base.safetensors
fi
run adapters adapters $(($(left) - 40)) "${common[@]}" --weights "$base" "${adapter_init[@]}" --lr 5e-4 --seed 8 ${ADAPTER_ARGS:-} && cp "$work/adapters.safetensors" "$out/"
log "done"
