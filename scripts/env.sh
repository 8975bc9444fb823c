# Shared settings for the provisioning scripts; sourced, never executed.
# Every value can be overridden from the environment (or as a make variable).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHET_CACHE=${CACHET_CACHE:-/var/cache/cachet}
CACHET_ROOTFS=${CACHET_ROOTFS:-$CACHET_CACHE/rootfs-trixie}
CACHET_STATE=${CACHET_STATE:-$REPO_ROOT/var}
CACHET_TOOLS=${CACHET_TOOLS:-$CACHET_CACHE/tools/bin}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

PG_PORT=${CACHET_PG_PORT:-55432}
S3_PORT=${CACHET_S3_PORT:-59000}
S3_ACCESS_KEY=${CACHET_S3_ACCESS_KEY:-cachet}
S3_SECRET_KEY=${CACHET_S3_SECRET_KEY:-cachet-secret-key}
VERSITYGW_VERSION=v1.8.0
PG_MAJOR=17

# Packages the Go build, the tests and the services need, wherever they run.
TORCH_PACKAGES="libtorch-dev libopenblas0-openmp g++ gcc libc6-dev ca-certificates"
SERVICE_PACKAGES="postgresql-$PG_MAJOR postgresql-$PG_MAJOR-pgvector"
DATA_PACKAGES="dataset-fashion-mnist"
# The README's API examples (curl --json needs 7.82+; jq reads the answers); the suite runs them.
TOOL_PACKAGES="curl jq"
# The console's browser tests drive a headless Chromium (fonts so its screenshots show text).
BROWSER_PACKAGES="chromium fonts-dejavu-core"

# MODE says where libtorch-linked code and Postgres run:
#   native  - Debian 13+ host: Debian's own packages on the host.
#   rootfs  - older hosts (Debian 12): a trixie rootfs outside the checkout, entered per command.
# LIBTORCH=/path (an official libtorch distribution) builds Go natively against it; the
# services still come from the rootfs unless the host is Debian 13+.
debian_major=$(cut -d. -f1 /etc/debian_version 2>/dev/null || echo 0)
case "$debian_major" in (*[!0-9]*|"") debian_major=0 ;; esac
if [ "$debian_major" -ge 13 ]; then MODE=native; else MODE=rootfs; fi
LIBTORCH=${LIBTORCH:-}

# Runs a command where the toolchain and services live (in the rootfs on Debian 12).
in_env() { "$REPO_ROOT/scripts/in-env.sh" "$@"; }

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
