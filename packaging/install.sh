#!/bin/sh
# Install ComputeNet from this offline bundle into a new virtualenv at PREFIX, with no access to
# any package index: every wheel comes from the bundle's wheels/ folder.
#   ./install.sh PREFIX            e.g. ./install.sh /opt/computenet
# Environment: PYTHON (default pythonX.Y of the bundle), EXTRAS (default: what the bundle holds).
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 PREFIX   (a new virtualenv, e.g. /opt/computenet)" >&2
  exit 2
fi
PREFIX=$1
HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# shellcheck source=/dev/null
. "$HERE/bundle.env"
PYTHON=${PYTHON:-python$BUNDLE_PYTHON}
EXTRAS=${EXTRAS:-$BUNDLE_EXTRAS}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: $PYTHON not found; the bundle's wheels are for Python $BUNDLE_PYTHON" >&2
  exit 2
fi
have=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$have" != "$BUNDLE_PYTHON" ]; then
  echo "error: $PYTHON is Python $have; the bundle's wheels are for Python $BUNDLE_PYTHON" >&2
  exit 2
fi
if [ -e "$PREFIX/bin/python" ]; then
  echo "note: $PREFIX is already a virtualenv; installing into it"
fi

# --without-pip: no ensurepip needed (Debian ships it separately); pip comes from the bundle
"$PYTHON" -m venv --without-pip "$PREFIX"
PIP_WHEEL=$(ls "$HERE"/wheels/pip-"$BUNDLE_PIP"-*.whl)
PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$PREFIX/bin/python" "$PIP_WHEEL/pip" install \
  --quiet --no-index --find-links "$HERE/wheels" \
  "pip==$BUNDLE_PIP" "computenet[$EXTRAS]==$BUNDLE_VERSION"

mkdir -p "$PREFIX/share/computenet/units"
cp "$HERE"/units/*.service "$PREFIX/share/computenet/units/"

echo "installed computenet $BUNDLE_VERSION [$EXTRAS] in $PREFIX"
echo "next: $PREFIX/bin/computenet-agent check --config /etc/computenet/agent.yaml --connect"
echo "      $PREFIX/bin/computenet-agent install-unit --config /etc/computenet/agent.yaml \\"
echo "        --output /etc/systemd/system && systemctl daemon-reload"
