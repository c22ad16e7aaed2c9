#!/usr/bin/env bash
# The tests also run the elastix *executable* (the engine Slicer uses through SlicerElastix).
# On Debian/Ubuntu it comes from the 'elastix' package; this installs it when it is missing.
set -euo pipefail
if command -v elastix >/dev/null && command -v transformix >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi
if [ "$SUDO" = "none" ] || ! command -v apt-get >/dev/null; then
  echo "error: the elastix executable is missing. Install it (Debian/Ubuntu: 'apt-get install elastix'," >&2
  echo "       or elastix >= 5.0 from https://elastix.dev) and put it on PATH, or set ELASTIX_EXECUTABLE." >&2
  exit 1
fi
echo "installing the elastix executable (Debian package 'elastix')"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq elastix >/dev/null
