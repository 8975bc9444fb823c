#!/usr/bin/env bash
# Runs one command where Cachet's toolchain lives, with the cgo flags gotch needs.
#   Debian 13+ host: runs it directly.
#   Debian 12 host:  enters the trixie rootfs for just this command (private mount namespace +
#                    bind mounts + chroot), so nothing stays mounted once it (and what it started) ends.
# The working directory, the checkout, the state directory, /tmp and Go's module cache are the same
# paths inside as outside, so commands and file arguments behave as on the host.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
[ $# -gt 0 ] || die "usage: scripts/in-env.sh COMMAND [ARGS...]"

# Installed by provisioning at a fixed path (not the checkout's), so every clone builds gotch with identical
# flags and hits Go's build cache.
compat="$CACHET_CACHE/gotch/compat.h"
if [ -n "$LIBTORCH" ]; then
	[ -f "$LIBTORCH/include/torch/script.h" ] || die "LIBTORCH=$LIBTORCH is not a libtorch distribution (no include/torch/script.h)"
	export CGO_CXXFLAGS="-include $compat -I$LIBTORCH/include -I$LIBTORCH/include/torch/csrc/api/include"
	export CGO_LDFLAGS="-L$LIBTORCH/lib -Wl,-rpath,$LIBTORCH/lib -L$CACHET_CACHE/gotch/stubs -Wl,--as-needed"
	export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	# Go builds run natively; the services (Postgres) still come from the rootfs on Debian 12.
	if [ "${CACHET_ENV_FOR:-build}" = build ] || [ "$MODE" = native ]; then exec "$@"; fi
fi
if [ "$MODE" = native ]; then
	export CGO_CXXFLAGS="${CGO_CXXFLAGS:--include $compat -I/usr/include/torch/csrc/api/include}"
	export CGO_LDFLAGS="${CGO_LDFLAGS:--L$CACHET_CACHE/gotch/stubs -Wl,--as-needed}"
	exec "$@"
fi

[ "$(id -u)" = 0 ] || die "entering the rootfs needs root (unshare + chroot); run as root or set LIBTORCH for a native build"
ROOT=$CACHET_ROOTFS
[ -f "$ROOT/.cachet-ready" ] || die "the toolchain rootfs at $ROOT is missing or incomplete: run 'make toolchain'"

goroot=$(go env GOROOT 2>/dev/null || echo /usr/local/go)
gomodcache=$(go env GOMODCACHE 2>/dev/null || echo /root/go/pkg/mod)
mkdir -p "$gomodcache" "$CACHET_STATE"
cwd=$(pwd)

# Paths bound into the rootfs at the same place, so file arguments mean what they mean on the host: the
# checkout, state, cwd, /tmp, Cachet's cache (checkpoints), the usual data mounts, Go and its module
# cache, plus any in CACHET_BIND (colon-separated). Other paths resolve inside the rootfs.
binds=("$REPO_ROOT" "$CACHET_STATE" "$cwd" /tmp "$CACHET_CACHE" /mnt /media /srv /work "$goroot" "$gomodcache")
IFS=: read -r -a extra <<<"${CACHET_BIND:-}"
binds+=("${extra[@]}")

export COMPAT_H=/opt/cachet/compat.h
# The inner script is passed with -c (not on stdin) so the command keeps the caller's stdin.
inner=$(cat <<'INNER'
set -euo pipefail
ROOT=$1 cwd=$2 goroot=$3 gomodcache=$4; shift 4
binds=(); while [ "$1" != -- ]; do binds+=("$1"); shift; done; shift
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mount --make-rslave "$ROOT/dev"
for p in "${binds[@]}"; do
	[ -n "$p" ] && [ "$p" != / ] && [ -d "$p" ] || continue
	mkdir -p "$ROOT$p"
	mount --bind "$p" "$ROOT$p"
done
cp -f /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
export PATH="$goroot/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export HOME=/root GOROOT="$goroot" GOMODCACHE="$gomodcache" GOTOOLCHAIN=local GOCACHE=/root/.cache/go-build
export CGO_CXXFLAGS="${CGO_CXXFLAGS:--include ${COMPAT_H} -I/usr/include/torch/csrc/api/include}"
export CGO_LDFLAGS="${CGO_LDFLAGS:--L/opt/cachet/stubs -Wl,--as-needed}"
exec chroot "$ROOT" /bin/bash -c 'cd "$1" && shift && exec "$@"' bash "$cwd" "$@"
INNER
)
exec unshare --mount --propagation private -- /bin/bash -c "$inner" enter "$ROOT" "$cwd" "$goroot" "$gomodcache" "${binds[@]}" -- "$@"
