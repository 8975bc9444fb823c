#!/usr/bin/env bash
# Idempotent provisioning: everything `make run` and `make test` need on a fresh machine.
#   - Debian 13+: Debian's packages on the host.
#   - Debian 12:  a Debian trixie rootfs (debootstrap) outside the checkout, repaired when the package
#                 list changes and rebuilt when its base changes (recorded in $ROOT/.cachet-stamp).
#   - Both: the CUDA stand-in libraries gotch links against, and versitygw (the S3 server).
# The fast path (nothing changed) takes well under a second.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

mkdir -p "$CACHET_CACHE" "$CACHET_TOOLS"
exec 9>"$CACHET_CACHE/provision.lock"
flock 9

apt_updated=0
apt_install_host() {
	local missing=()
	for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || die "need root to install: ${missing[*]}"
	say "installing host packages: ${missing[*]}"
	[ $apt_updated = 1 ] || { apt-get update -qq; apt_updated=1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

hash_of() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
# The gotch build aids (CUDA stand-ins, compat header) live outside the checkout at a fixed path, so every
# clone compiles gotch with the same flags and reuses Go's build cache.
stubs_key=$(cat "$REPO_ROOT/toolchain/gotch/stubs.sh" "$REPO_ROOT/toolchain/gotch/compat.h" | sha256sum | cut -c1-16)
install_gotch_aids() { # $1 = directory (seen from where builds run: host or rootfs)
	bash "$REPO_ROOT/toolchain/gotch/stubs.sh" "$1/stubs"
	cp "$REPO_ROOT/toolchain/gotch/compat.h" "$1/compat.h"
}

# --- Debian 13+: native packages -------------------------------------------------------------------
provision_native() {
	apt_install_host $TORCH_PACKAGES $SERVICE_PACKAGES $DATA_PACKAGES $TOOL_PACKAGES $BROWSER_PACKAGES
	if [ "$(cat "$CACHET_CACHE/gotch/.key" 2>/dev/null)" != "$stubs_key" ]; then
		mkdir -p "$CACHET_CACHE/gotch"
		install_gotch_aids "$CACHET_CACHE/gotch"
		echo "$stubs_key" >"$CACHET_CACHE/gotch/.key"
	fi
}

# --- Debian 12: trixie rootfs ----------------------------------------------------------------------
ROOT=$CACHET_ROOTFS
base_key=$(hash_of "trixie" "minbase" "$DEBIAN_MIRROR" "rootfs-v1")
pkgs_key=$(hash_of $TORCH_PACKAGES $SERVICE_PACKAGES $DATA_PACKAGES $TOOL_PACKAGES $BROWSER_PACKAGES)

stamp_get() { sed -n "s/^$1=//p" "$ROOT/.cachet-stamp" 2>/dev/null; }

in_root() { # runs a command in the rootfs during provisioning (no checkout binds needed)
	unshare --mount --propagation private -- /bin/bash -c '
		set -e; R=$1; shift
		mount -t proc proc "$R/proc"; mount --rbind /dev "$R/dev"; mount --make-rslave "$R/dev"
		exec chroot "$R" "$@"' in_root "$1" "${@:2}"
}

rootfs_install_packages() { # $1 = root
	cp -f /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt" 2>/dev/null || true
	cp -f /etc/resolv.conf "$1/etc/resolv.conf"
	say "installing packages in the rootfs (~3 min the first time)"
	in_root "$1" /usr/bin/env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		/bin/sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $TORCH_PACKAGES $SERVICE_PACKAGES $DATA_PACKAGES $TOOL_PACKAGES $BROWSER_PACKAGES >/dev/null && apt-get clean"
	# Debian's postgresql package creates a default cluster; Cachet runs its own under the state dir.
	in_root "$1" /bin/sh -c "pg_dropcluster --stop $PG_MAJOR main 2>/dev/null || true"
}

rootfs_build() {
	local tmp="$ROOT.building"
	apt_install_host debootstrap
	say "building the Debian trixie rootfs at $ROOT (~5 min the first time)"
	rm -rf --one-file-system "$tmp"
	debootstrap --variant=minbase trixie "$tmp" "$DEBIAN_MIRROR" >"$CACHET_CACHE/debootstrap.log" 2>&1 ||
		die "debootstrap failed (log: $CACHET_CACHE/debootstrap.log)"
	rootfs_install_packages "$tmp"
	printf 'base=%s\npackages=%s\n' "$base_key" "$pkgs_key" >"$tmp/.cachet-stamp"
	[ -d "$ROOT" ] && rm -rf --one-file-system "$ROOT"
	mv "$tmp" "$ROOT"
}

provision_rootfs() {
	[ "$(id -u)" = 0 ] || die "building the rootfs needs root"
	if [ "$(stamp_get base)" != "$base_key" ]; then
		rm -f "$ROOT/.cachet-ready"
		rootfs_build
	elif [ "$(stamp_get packages)" != "$pkgs_key" ]; then
		rm -f "$ROOT/.cachet-ready"
		say "package list changed: repairing the rootfs"
		rootfs_install_packages "$ROOT"
		sed -i "s/^packages=.*/packages=$pkgs_key/" "$ROOT/.cachet-stamp"
	fi
	if [ "$(stamp_get stubs)" != "$stubs_key" ] || [ ! -f "$ROOT/.cachet-ready" ]; then
		mkdir -p "$ROOT/opt/cachet"
		cp "$REPO_ROOT/toolchain/gotch/stubs.sh" "$ROOT/opt/cachet/stubs.sh"
		cp "$REPO_ROOT/toolchain/gotch/compat.h" "$ROOT/opt/cachet/compat.h"
		in_root "$ROOT" /bin/bash /opt/cachet/stubs.sh /opt/cachet/stubs
		sed -i '/^stubs=/d' "$ROOT/.cachet-stamp"; echo "stubs=$stubs_key" >>"$ROOT/.cachet-stamp"
	fi
	# Go fetches modules from inside the rootfs: it must trust what the host trusts (a host may add its own
	# CA at boot, and installing Debian's ca-certificates regenerates the bundle without it).
	cp -f /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt" 2>/dev/null || true
	touch "$ROOT/.cachet-ready"
}

# --- versitygw (S3 API server) ---------------------------------------------------------------------
provision_versitygw() {
	[ "$(cat "$CACHET_TOOLS/versitygw.version" 2>/dev/null)" = "$VERSITYGW_VERSION" ] && [ -x "$CACHET_TOOLS/versitygw" ] && return 0
	say "building versitygw $VERSITYGW_VERSION (~3 min the first time)"
	GOBIN="$CACHET_TOOLS" GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
	echo "$VERSITYGW_VERSION" >"$CACHET_TOOLS/versitygw.version"
}

provision_versitygw &
vgw_pid=$!
if [ "$MODE" = native ]; then provision_native; else provision_rootfs; fi
if [ -n "$LIBTORCH" ] && [ "$(cat "$CACHET_CACHE/gotch/.key" 2>/dev/null)" != "$stubs_key" ]; then
	mkdir -p "$CACHET_CACHE/gotch"
	install_gotch_aids "$CACHET_CACHE/gotch"
	echo "$stubs_key" >"$CACHET_CACHE/gotch/.key"
fi
wait $vgw_pid || die "building versitygw failed"
