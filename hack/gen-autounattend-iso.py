#!/usr/bin/env python3
"""Build the Windows answer ISO (label `autounattend`) on its own, to boot a Windows ISO by hand.

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
      -drive file=virtio-win.iso,if=none,id=cd1,media=cdrom -device usb-storage,drive=cd1 \\
      -drive file=answer.iso,if=none,id=cd2,media=cdrom -device usb-storage,drive=cd2 \\
      -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=net0

arm64 needs NetKVM from the virtio-win ISO: Windows on arm64 has no inbox driver for a network device QEMU
emulates. `--virtio-win virtio-win.iso` copies it (and viostor for an x86_64 virtio disk) onto the answer ISO
under $WinPEDriver$, where Setup finds it on whatever drive letter; the virtio-win ISO itself need not be
attached. Add `--language de-DE` (or another) for an ISO that is not English (United States).

Press a key at "Press any key to boot from CD or DVD". When Setup is done, `ssh -p 2222 USER@127.0.0.1`
with the key given (or ~/.ssh/id_*.pub; without any, the tool makes <ISO>.key) and check
C:\\ProgramData\\Lima\\lima-boot-done.txt.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from limapy.cidata.windows import new_password, write_answer_iso, write_password_file
from limapy.config.model import Spec
from limapy.errors import LimapyError

ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}


def load_spec(path: Path | None, arch: str) -> Spec:
    """The lima.yaml as limapy reads it (base: embedded, defaults filled, validated), or without one a
    minimal Windows template filled the same way: one place decides every default."""
    from limapy.config import check, load_config
    from limapy.config.load import load_bytes

    if path is not None:
        spec = load_config(str(path)).spec
    else:
        virtio = "  Windows:\n    virtioWin: [{location: virtio-win.iso}]\n" if arch == "aarch64" else "  Windows: {}\n"
        text = f"os: Windows\narch: {arch}\nimages:\n- {{location: windows.iso, arch: {arch}}}\nosOpts:\n{virtio}"
        spec = check(load_bytes(text.encode(), "<gen-autounattend-iso>")).spec
    return dataclasses.replace(spec, arch=arch)


def ssh_keys(paths: list[Path], output: Path) -> tuple[list[str], Path | None]:
    """The public keys to install, and the private key generated for them when none was found anywhere
    (ed25519, `<ISO>.key`, 0600), so the recipe works on a fresh machine."""
    generated = None
    if not paths:
        from limapy.dirs import config_dir

        paths = [config_dir() / "user.pub"] if (config_dir() / "user.pub").exists() else []
        paths += sorted((Path.home() / ".ssh").glob("id_*.pub"))
    if not paths:
        from limapy import proc

        generated = output.with_name(output.name + ".key")
        for old in (generated, generated.with_name(generated.name + ".pub")):
            old.unlink(missing_ok=True)
        proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "limapy-answer-iso", "-f", generated])
        generated.chmod(0o600)
        paths = [generated.with_name(generated.name + ".pub")]
    keys = [line.strip() for p in paths for line in p.read_text().splitlines() if line.strip()]
    if not keys:
        raise LimapyError("no SSH public key found", hint="pass --ssh-key FILE")
    return keys, generated


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=sorted(ARCHES))
    ap.add_argument("-o", "--output", required=True, type=Path)
    ap.add_argument("--config", type=Path, help="lima.yaml to take user, tpm, firmware, provision from")
    ap.add_argument("--ssh-key", action="append", type=Path, default=[], help="public key file (repeatable)")
    ap.add_argument("--server", action="store_true", help="Windows Server media (index 1, 2k25 drivers)")
    ap.add_argument("--image-index", type=int)
    ap.add_argument("--image-name")
    ap.add_argument(
        "--virtio-win",
        type=Path,
        help="virtio-win ISO to copy NetKVM (and viostor, --virtio-disk) from, onto the answer ISO's $WinPEDriver$ "
        "(needed for arm64: its network needs NetKVM)",
    )
    ap.add_argument("--virtio-disk", action="store_true", help="x86_64: the disk is virtio-blk (copy viostor too)")
    ap.add_argument("--language", default="en-US", help="the install ISO's language (e.g. de-DE); default en-US")
    ap.add_argument("--locale", help="another format and keyboard (osOpts.Windows.locale), e.g. de-CH")
    ap.add_argument("--product-key", help="product key for non-evaluation Server media (kept out of output)")
    ap.add_argument("--openssh-msi", type=Path, help="Win32-OpenSSH MSI to carry on the ISO")
    ap.add_argument("--openssh-msi-sha256", help="expected sha256 of --openssh-msi")
    args = ap.parse_args()

    try:
        spec = load_spec(args.config, ARCHES[args.arch])
        msi = None
        if args.openssh_msi:
            msi = args.openssh_msi.read_bytes()
            digest = hashlib.sha256(msi).hexdigest()
            if args.openssh_msi_sha256 and args.openssh_msi_sha256.lower().removeprefix("sha256:") != digest:
                raise LimapyError(f"{args.openssh_msi}: sha256 {digest} does not match --openssh-msi-sha256")
        from limapy import virtiowin, winlocale

        if args.arch == "arm64" and args.virtio_win is None:
            raise LimapyError("arm64 needs NetKVM from virtio-win", hint="pass --virtio-win virtio-win.iso")
        drivers = None
        if args.virtio_win is not None:
            drivers = virtiowin.read_drivers(
                args.virtio_win, virtiowin.drivers_for(virtio_disk=args.virtio_disk),
                version=virtiowin.version_dir(args.server), arch=spec.arch,
            )  # fmt: skip
        locale = winlocale.choose((args.language,), override=args.locale or spec.windows.locale)
        password = new_password()
        admin_password = new_password() if args.server else None
        out: Path = args.output
        keys, generated = ssh_keys(args.ssh_key, out)
        win = spec.windows
        write_answer_iso(
            out,
            spec,
            name=args.config.stem if args.config else "windows",
            arch=spec.arch,
            password=password,
            ssh_pubkeys=keys,
            image_index=args.image_index if args.image_index is not None else win.image_index,
            image_name=args.image_name or win.edition,
            is_server=args.server,
            locale=locale,
            opensshmsi=msi,
            product_key=args.product_key or win.product_key,
            winpe_drivers=drivers,
            admin_password=admin_password,
        )
        pw_file = out.with_name(out.name + ".password")
        write_password_file(pw_file, password)
        if admin_password is not None:
            write_password_file(out.with_name(out.name + ".admin-password"), admin_password)
    except (LimapyError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        hint = getattr(e, "hint", None)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        return 1
    print(f"wrote {out} (label autounattend); the password of user {spec.user.name!r} is in {pw_file} (0600)")
    if generated is not None:
        print(f"no SSH key was found, so one was made: ssh -i {generated} -p 2222 {spec.user.name}@127.0.0.1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
