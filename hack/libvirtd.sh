#!/usr/bin/env bash
# Make sure libvirtd answers on qemu:///system (the libvirt driver's tests use it), starting it when needed:
# through systemd when this machine runs it, else the daemons directly (containers, CI machines without
# systemd). Idempotent; run as root (or with sudo available).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
URI=qemu:///system
answers() { timeout 20 virsh -c "$URI" version >/dev/null 2>&1; }

# Debian's udev rule gives /dev/kvm to group kvm (0660). Without udev (containers) it can stay root-only; the
# QEMU user libvirt runs (libvirt-qemu, in group kvm) then cannot open it, while libvirt's capability probe
# (as root) can: libvirtd sees the mismatch and probes every QEMU binary again on each call (about a minute
# for a `define`). Set what udev would have set.
if [ -c /dev/kvm ] && getent group kvm >/dev/null && [ "$(stat -c %G /dev/kvm)" != kvm ]; then
  $SUDO chgrp kvm /dev/kvm && $SUDO chmod 0660 /dev/kvm
  echo "libvirtd.sh: /dev/kvm given to group kvm (0660), as Debian's udev rule does" >&2
fi

if answers; then exit 0; fi
if [ -d /run/systemd/system ]; then
  $SUDO systemctl start virtlogd.socket libvirtd.socket libvirtd.service 2>/dev/null || true
fi
if ! answers; then
  pgrep -x virtlogd >/dev/null || $SUDO virtlogd -d
  pgrep -x libvirtd >/dev/null || $SUDO libvirtd -d
fi
for _ in $(seq 1 30); do
  if answers; then echo "libvirtd.sh: libvirtd answers on $URI" >&2; exit 0; fi
  sleep 1
done
echo "libvirtd.sh: libvirtd does not answer on $URI" >&2
exit 1
