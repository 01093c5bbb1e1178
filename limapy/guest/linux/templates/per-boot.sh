#!/bin/sh
# limapy: installed by cloud-init into /var/lib/cloud/scripts/per-boot; runs boot.sh from the seed.
set -eu
# Started early by the limapy-boot unit (see early.sh in limapy's sources): cloud-final's run does nothing.
if [ -e /run/limapy-boot-unit ] && [ "${LIMAPY_BOOT_UNIT:-}" != 1 ]; then exit 0; fi
LIMA_CIDATA_MNT=/mnt/lima-cidata
LIMA_CIDATA_DEV=/dev/disk/by-label/cidata
mkdir -p -m 0700 "$LIMA_CIDATA_MNT"
if ! mountpoint -q "$LIMA_CIDATA_MNT"; then
  # overriderockperms (kernel >= 6.2) makes mode= win over the Rock Ridge modes; older kernels refuse it.
  mount -t iso9660 -o ro,mode=0700,dmode=0700,overriderockperms,exec,uid=0 "$LIMA_CIDATA_DEV" "$LIMA_CIDATA_MNT" 2>/dev/null ||
    mount -t iso9660 -o ro,mode=0700,dmode=0700,exec,uid=0 "$LIMA_CIDATA_DEV" "$LIMA_CIDATA_MNT"
fi
export LIMA_CIDATA_MNT
exec "$LIMA_CIDATA_MNT/boot.sh"
