#!/usr/bin/env python3
"""Build the Windows answer ISO (label `autounattend`) on its own, to boot a Windows ISO by hand: a thin
wrapper of `limapy windows answer-iso` (same flags), kept for checkouts and older instructions.

    hack/gen-autounattend-iso.py --arch amd64 -o answer.iso [--config lima.yaml]

The random password of the user is stored 0600 next to the ISO (<ISO>.password), with --server also the
built-in Administrator's (<ISO>.admin-password); they are never printed.
Manual test (x86_64 shown first, then aarch64; use -accel kvm -cpu host under KVM, hvf on macOS):

    cp /usr/share/OVMF/OVMF_VARS_4M.fd vars.fd; qemu-img create -f qcow2 disk.qcow2 64G
    qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 4 -m 4G \\
      -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \\
      -drive if=pflash,format=raw,unit=1,file=vars.fd \\
      -drive file=disk.qcow2,if=none,id=disk -device ahci,id=ahci -device ide-hd,drive=disk,bus=ahci.0 \\
      -drive file=Win11_x64.iso,media=cdrom -drive file=answer.iso,media=cdrom \\
      -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22 -device e1000e,netdev=net0

    cp /usr/share/AAVMF/AAVMF_VARS.fd vars.fd      # code and vars are both exactly 64 MiB
    qemu-system-aarch64 -machine virt -accel tcg -cpu max,pauth-impdef=on -smp 4 -m 4G \\
      -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd \\
      -drive if=pflash,format=raw,unit=1,file=vars.fd \\
      -drive file=disk.qcow2,if=none,id=disk -device nvme,drive=disk,serial=limapy \\
      -device qemu-xhci -device usb-kbd -device usb-tablet -device ramfb \\
      -drive file=Win11_Arm64.iso,if=none,id=cd0,media=cdrom -device usb-storage,drive=cd0 \\
      -drive file=answer.iso,if=none,id=cd2,media=cdrom -device usb-storage,drive=cd2 \\
      -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=net0

arm64 needs NetKVM from the virtio-win ISO: Windows on arm64 has no inbox driver for a network device QEMU
emulates. `--virtio-win virtio-win.iso` copies it (and viostor for an x86_64 virtio disk, --virtio-disk) onto
the answer ISO under $WinPEDriver$, where Setup finds it on whatever drive letter; the virtio-win ISO itself
need not be attached. `--language de-DE` for an ISO that is not English (United States).

Press a key at "Press any key to boot from CD or DVD". When Setup is done, `ssh -p 2222 USER@127.0.0.1`
with the key given (or ~/.ssh/id_*.pub; without any, the tool makes <ISO>.key) and check
C:\\ProgramData\\Lima\\lima-boot-done.txt.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if __name__ == "__main__":
    from limapy.cli import main

    if sys.argv[1:] in (["-h"], ["--help"]):
        print(__doc__)
    sys.exit(main(["windows", "answer-iso", *sys.argv[1:]]))
