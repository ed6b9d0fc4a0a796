#!/usr/bin/env bash
# Make sure bubblewrap (bwrap) is present and works: the grader runs every learner's
# kernel in a bwrap sandbox. Installs Debian's bubblewrap when bwrap is missing (root, or
# passwordless sudo), then checks that it can create its namespaces here.
set -euo pipefail

if ! command -v bwrap >/dev/null 2>&1; then
    echo "ensure_bwrap: bwrap not found, installing Debian's bubblewrap" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo -n"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null; }; then
        echo "ensure_bwrap: could not install bubblewrap (needs root or passwordless sudo and apt-get);" \
             "install it yourself, or grade trusted notebooks only, with --no-sandbox" >&2
        exit 1
    fi
fi
if ! bwrap --unshare-all --die-with-parent --ro-bind / / true 2>/dev/null \
        && ! bwrap --unshare-pid --unshare-net --die-with-parent --ro-bind / / true; then
    echo "ensure_bwrap: bwrap is installed but cannot create a sandbox here (user namespaces" \
         "disabled?); the grader will refuse to grade unless given --no-sandbox" >&2
    exit 1
fi
