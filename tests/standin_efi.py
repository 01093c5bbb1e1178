"""The stand-in boot program of a Windows install ISO (tests/standin/bootcd.c), built for tests.

Compiled freestanding with clang + lld into a UEFI application per arch, put on a FAT image (mkfs.fat +
mtools) as \\EFI\\BOOT\\BOOT{X64,AA64}.EFI, which tests/winiso.py makes the ISO's El Torito EFI boot image,
as Microsoft's efisys.bin is. Built once per source hash under the cache dir.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "standin" / "bootcd.c"
TOOLS = ("clang", "ld.lld", "mkfs.fat", "mcopy", "mmd")
_TARGETS = {"x86_64": ("x86_64-unknown-windows", "BOOTX64.EFI"), "aarch64": ("aarch64-unknown-windows", "BOOTAA64.EFI")}


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "limapy" / "standin-efi"


#: Variants of the boot program: "" prints its prompt through ConOut (on the serial console too), "screen" on the
#: graphics console only (a firmware that does not echo the prompt to the serial port).
VARIANTS = {"": [], "screen": ["-DPROMPT_ON_SCREEN_ONLY"]}


def boot_image(arch: str, variant: str = "") -> bytes:
    """The FAT El Torito image holding the stand-in boot program for `arch`."""
    target, name = _TARGETS[arch]
    flags = VARIANTS[variant]
    key = hashlib.sha256(SOURCE.read_bytes() + arch.encode() + " ".join(flags).encode()).hexdigest()[:16]
    out = _cache_dir() / f"{arch}{'-' + variant if variant else ''}-{key}.img"
    if out.is_file():
        return out.read_bytes()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        efi = Path(tmp) / name
        subprocess.run(
            ["clang", f"--target={target}", "-ffreestanding", "-fshort-wchar", "-mno-red-zone", "-nostdlib",
             "-fno-stack-protector", "-fuse-ld=lld", "-Wl,-entry:efi_main", "-Wl,-subsystem:efi_application",
             "-O2", "-Wall", "-Werror", *flags, "-o", str(efi), str(SOURCE)],
            check=True, capture_output=True,
        )  # fmt: skip
        img = Path(tmp) / "efiboot.img"
        subprocess.run(["mkfs.fat", "-C", str(img), "1440"], check=True, capture_output=True)
        subprocess.run(["mmd", "-i", str(img), "::/EFI", "::/EFI/BOOT"], check=True, capture_output=True)
        subprocess.run(["mcopy", "-i", str(img), str(efi), f"::/EFI/BOOT/{name}"], check=True, capture_output=True)
        os.replace(img, out)
    return out.read_bytes()
