#!/usr/bin/env bash
# ref-venv.sh: makes sure the Python virtual environment of the PyTorch reference exists
# with the pinned packages of tools/reference/requirements.txt, and prints its python.
#
#   py=$(scripts/ref-venv.sh)
#
# The environment lives OUTSIDE the repository (default: ../venv-ref beside the checkout;
# override with SEVO_REF_VENV); it is created when missing (torch pulls CUDA wheels from
# PyPI: large, once). Used by scripts/make-fixtures.sh and bench/compare.sh; nothing here
# is needed to build or test sevo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${SEVO_REF_VENV:-$(dirname "$root")/venv-ref}
case "$venv/" in
"$root"/*) echo "ref-venv: the virtual environment must be outside the repository ($venv)" >&2; exit 1 ;;
esac
if [ ! -x "$venv/bin/python" ]; then
    echo "ref-venv: creating $venv" >&2
    python3 -m venv "$venv" >&2
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tools/reference/requirements.txt" >&2
echo "$venv/bin/python"
