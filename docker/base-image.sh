#!/usr/bin/env bash
# Build a stand-in for the public base image where no registry can be reached: Debian bookworm
# (the distribution python:3.11-slim-bookworm is built on) with its python3, made by debootstrap
# and imported into podman as $1 (default localhost/dlr-base:bookworm). Skipped when it exists.
set -euo pipefail
NAME=${1:-localhost/dlr-base:bookworm}
if podman image exists "$NAME"; then echo "base image $NAME exists"; exit 0; fi
MIRROR=$( { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
            grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}'; } | grep -E '/debian/?$' | head -1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOTFS=$(mktemp -d)
trap 'rm -rf "$ROOTFS"' EXIT
echo "debootstrap bookworm from $MIRROR"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd bookworm "$ROOTFS" "$MIRROR" >/dev/null
# HTTPS from inside containers needs the host's extra CA certificates here.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
  chroot "$ROOTFS" update-ca-certificates >/dev/null
fi
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | podman import --change 'CMD ["/bin/bash"]' - "$NAME" >/dev/null
echo "base image $NAME imported"
