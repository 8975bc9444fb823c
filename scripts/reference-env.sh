#!/usr/bin/env bash
# Installs the PyTorch reference environment (Debian's python3-torch, the same libtorch 2.6) where the
# toolchain lives, for regenerating golden files and for the PyTorch side of `cachet bench model`.
# Not needed by `make test`: the goldens are committed.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
REFERENCE_PACKAGES="python3-torch python3-numpy"
if in_env python3 -c 'import torch' 2>/dev/null; then exit 0; fi
say "installing the PyTorch reference ($REFERENCE_PACKAGES)"
in_env /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $REFERENCE_PACKAGES >/dev/null && apt-get clean"
