#!/usr/bin/env bash
# Gradescope runs this once, as root and with the network, when it builds the autograder's
# image, in /autograder/source (this zip, unpacked). It installs what grading needs: Python
# 3.11 or newer (numpy 2.4 needs it: choose Gradescope's Ubuntu 24.04 base image), bubblewrap
# and util-linux (the sandbox's bwrap, prlimit, setpriv), and the course's pinned packages in
# a virtual environment beside this file. AUTOGRADER_ROOT moves /autograder (for tests).
set -euo pipefail
SOURCE="${AUTOGRADER_ROOT:-/autograder}/source"
cd "$SOURCE"

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip bubblewrap util-linux

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup.sh: $(python3 --version) is too old: the course's packages need Python 3.11 or" >&2
    echo "newer. Choose the Ubuntu 24.04 base image in the autograder's settings." >&2
    exit 1
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
.venv/bin/python -m pip install --quiet --no-deps -e .

# The graded tests (and the references they compute) are for the grader only.
chmod -R go-rwx tests

# Say in the build log whether submissions will be graded in the sandbox here.
.venv/bin/python -m grader.gradescope --check
