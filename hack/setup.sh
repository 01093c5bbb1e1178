#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: the system tools limapy drives, and a venv with limapy.
# Re-running is cheap: apt and pip skip what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PKGS=(
  qemu-system-x86 qemu-system-arm qemu-utils   # QEMU for x86_64 and aarch64 guests, qemu-img
  ovmf qemu-efi-aarch64                        # UEFI firmware (OVMF, AAVMF)
  swtpm swtpm-tools                            # TPM emulation (Windows 11)
  openssh-client                               # limapy shell / copy
  rsync                                        # limapy shell --sync, copy --backend rsync
  mmdebstrap e2fsprogs                         # hack/build-test-image.sh (offline test guest)
  fdisk grub-common                            # build-test-image.sh --boot uefi|bios (sfdisk, GRUB; per arch below)
  qemu-user-static arch-test                   # build-test-image.sh --arch aarch64 (arm64 chroot via binfmt)
  genisoimage                                  # isoinfo, to read back generated ISOs in tests
  cloud-init                                   # `cloud-init schema` checks the generated user-data
  clang lld dosfstools mtools                  # tests: the stand-in boot program of a Windows ISO (UEFI)
  msitools                                     # tests: real MSIs (OpenSSH MSI platform checks)
  freerdp2-x11 xvfb                            # tests: `limapy rdp` with the real FreeRDP client
  zstd xz-utils iproute2 ca-certificates python3-venv
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients  # the libvirt driver's daemon, virsh
  libvirt-dev pkg-config gcc python3-dev      # to build the libvirt Python binding (pip's libvirt-python)
  openssh-server                               # tests: a "remote" libvirt host reached over qemu+ssh://
  samba smbclient                              # mountType: smb (smbd, pdbedit); tests: smbclient
)
# GRUB's images exist per host arch: BIOS and x86_64 UEFI on amd64, arm64 UEFI on arm64 (the aarch64 test image
# takes its GRUB from the guest's own packages either way).
case "$(dpkg --print-architecture 2>/dev/null || uname -m)" in
  amd64|x86_64) PKGS+=(grub-pc-bin grub-efi-amd64-bin) ;;
  arm64|aarch64) PKGS+=(grub-efi-arm64-bin) ;;
esac
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # limapy needs samba's smbd program, never the system's SMB server: when this run installed samba and the
  # package started its services (a systemd host), they are stopped and disabled again, so that installing the
  # test tools does not leave the machine serving SMB on port 445.
  if [[ " ${missing[*]} " == *" samba "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now smbd.service nmbd.service samba-ad-dc.service >/dev/null 2>&1 || true
    echo "setup: samba installed for its smbd program; its system services were stopped and disabled" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
# An editable install leaves limapy's own modules uncompiled; with PYTHONDONTWRITEBYTECODE set they would be
# compiled on every run (~30 ms of CLI start-up). Compile them once here.
.venv/bin/python -m compileall -q limapy >/dev/null
.venv/bin/python -c 'import limapy, sys; print(f"setup: limapy {limapy.__version__} in .venv", file=sys.stderr)'
# libvirtd for the libvirt driver and its tests (started when it does not answer yet)
hack/libvirtd.sh
