"""UEFI firmware: find a code + vars-template pair, check it, and give each instance its own vars store.

Order of discovery: `firmware.images` entries that are local files, QEMU firmware descriptors
(`*/qemu/firmware/*.json`), then well-known paths of Debian/Ubuntu, Fedora, Arch, Homebrew and QEMU's
own share dir. Sizes are checked before QEMU starts because QEMU either refuses a wrong size with an
obscure message or, worse, silently accepts an x86 code/vars pair from different builds.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.config.model import FirmwareImage

log = logging.getLogger("limapy.qemu.firmware")

MIB = 1024 * 1024
#: aarch64 `virt` pflash units must be exactly this size.
AARCH64_FLASH = 64 * MIB
#: x86 pflash: QEMU refuses code + vars above this.
X86_FLASH_MAX = 8 * MIB
#: OVMF builds: code + vars together fill a flash of one of these sizes (1M, 2M and 4M layouts).
X86_LAYOUTS = (1 * MIB, 2 * MIB, 4 * MIB)
BLOCK = 0x1000

DESCRIPTOR_DIRS = (
    Path("/etc/qemu/firmware"),
    Path("/usr/share/qemu/firmware"),
    Path("/usr/local/share/qemu/firmware"),
    Path("/opt/homebrew/share/qemu/firmware"),
)

QEMU_SHARE_DIRS = (
    Path("/usr/share/qemu"),
    Path("/usr/local/share/qemu"),
    Path("/opt/homebrew/share/qemu"),
)

#: Known (code, vars) pairs per arch, most preferred first; vars None = blank store.
KNOWN_PAIRS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "x86_64": (
        ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
        ("/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"),
        ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
        ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
        ("/usr/share/qemu/ovmf-x86_64-4m-code.bin", "/usr/share/qemu/ovmf-x86_64-4m-vars.bin"),
    ),
    "aarch64": (
        ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
        ("/usr/share/edk2/aarch64/QEMU_CODE.fd", "/usr/share/edk2/aarch64/QEMU_VARS.fd"),
        ("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd", None),
    ),
}

#: QEMU's bundled edk2 builds: <share>/edk2-<code>.fd + <share>/edk2-<vars>.fd
QEMU_BUNDLED = {"x86_64": ("x86_64-code", "i386-vars"), "aarch64": ("aarch64-code", "arm-vars")}

DESCRIPTOR_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64"}
MACHINE = {"x86_64": "pc-q35-7.2", "aarch64": "virt-7.2"}
#: Descriptor features we cannot honour (no SMM, no Secure Boot set-up).
UNWANTED_FEATURES = {"requires-smm", "secure-boot", "enrolled-keys", "amd-sev-es", "intel-tdx"}


@dataclass
class FirmwarePair:
    code: Path
    vars_template: Path | None
    source: str = ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as e:
        raise LimapyError(f"firmware file {path} cannot be read: {e.strerror}") from e


def _describe(path: Path | None, size: int | None) -> str:
    if path is None:
        return "(no vars template)"
    return f"{path} ({size:,} B)"


def check_pair(pair: FirmwarePair, arch: str) -> None:
    """Raise LimapyError naming both files and sizes if QEMU would refuse them or boot a wrong layout."""
    code_size = _size(pair.code)
    vars_size = _size(pair.vars_template) if pair.vars_template else None
    both = f"code {_describe(pair.code, code_size)}, vars {_describe(pair.vars_template, vars_size)}"
    hint = "point firmware.images at a matching code file, or install ovmf / qemu-efi-aarch64"

    def bad(why: str) -> LimapyError:
        return LimapyError(f"unusable UEFI firmware: {why}: {both}", hint=hint)

    for label, path, size in (("code", pair.code, code_size), ("vars", pair.vars_template, vars_size)):
        if path is None or size is None:
            continue
        if size == 0 or size % BLOCK:
            raise bad(f"{label} file {path} is {size:,} B, not a non-zero multiple of 4096 B")
    if arch == "x86_64":
        if vars_size is None:
            raise bad("no vars template belongs to this code file")
        total = code_size + vars_size
        if total > X86_FLASH_MAX:
            raise bad(f"code + vars = {total:,} B exceeds the {X86_FLASH_MAX:,} B QEMU allows")
        if total not in X86_LAYOUTS:
            raise bad(
                f"code + vars = {total:,} B is no OVMF flash layout (1, 2 or 4 MiB): "
                "code and vars come from different builds"
            )
    elif arch == "aarch64":
        for label, path, size in (("code", pair.code, code_size), ("vars", pair.vars_template, vars_size)):
            if path is not None and size is not None and size > AARCH64_FLASH:
                raise bad(f"{label} file {path} is {size:,} B, larger than the {AARCH64_FLASH:,} B pflash")
    else:
        raise LimapyError(f"UEFI firmware for arch {arch!r} is not supported")


def _local_location(location: str) -> Path | None:
    if location.startswith("file://"):
        location = location[len("file://") :]
    elif "://" in location:
        return None
    return Path(os.path.expanduser(location))


def guess_vars(code: Path) -> Path | None:
    """The vars template shipped beside a code file, by the naming conventions of the usual builds."""
    name = code.name
    swaps = (
        ("edk2-x86_64-code", "edk2-i386-vars"),
        ("edk2-aarch64-code", "edk2-arm-vars"),
        ("CODE", "VARS"),
        ("code", "vars"),
    )
    for old, new in swaps:
        if old in name:
            candidate = code.with_name(name.replace(old, new))
            if candidate.is_file():
                return candidate
    return None


def _from_images(arch: str, images: Sequence[FirmwareImage]) -> FirmwarePair | None:
    for img in images:
        if img.arch != arch or img.vm_type not in (None, "", "qemu"):
            continue
        path = _local_location(img.location)
        if path is None:
            log.warning("firmware.images: remote location %s is not supported yet; skipped", img.location)
            continue
        if not path.is_file():
            raise LimapyError(f"firmware.images: {path} does not exist")
        return FirmwarePair(path, guess_vars(path), source="firmware.images")
    return None


def _descriptor_files(dirs: Sequence[Path]) -> list[Path]:
    """QEMU's precedence: same file name in an earlier dir wins; then sorted by name."""
    chosen: dict[str, Path] = {}
    for d in dirs:
        try:
            entries = sorted(d.glob("*.json"))
        except OSError:
            continue
        for f in entries:
            chosen.setdefault(f.name, f)
    return [chosen[k] for k in sorted(chosen)]


def _from_descriptor(path: Path, arch: str) -> FirmwarePair | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        log.debug("firmware descriptor %s unreadable; skipped", path)
        return None
    if not isinstance(data, dict) or "uefi" not in (data.get("interface-types") or []):
        return None
    mapping = data.get("mapping") or {}
    if mapping.get("device") != "flash" or set(data.get("features") or []) & UNWANTED_FEATURES:
        return None
    targets = data.get("targets") or []
    if not any(
        t.get("architecture") == DESCRIPTOR_ARCH.get(arch)
        and any(fnmatch(MACHINE[arch], m) for m in t.get("machines") or [])
        for t in targets
        if isinstance(t, dict)
    ):
        return None
    executable = (mapping.get("executable") or {}).get("filename")
    template = (mapping.get("nvram-template") or {}).get("filename")
    if not executable or not Path(executable).is_file():
        return None
    vars_path = Path(template) if template and Path(template).is_file() else None
    return FirmwarePair(Path(executable), vars_path, source=f"descriptor {path}")


def _known(arch: str, share_dirs: Iterable[Path]) -> list[FirmwarePair]:
    out: list[FirmwarePair] = []
    code_suffix, vars_suffix = QEMU_BUNDLED[arch]
    for share in share_dirs:
        code = share / f"edk2-{code_suffix}.fd"
        if code.is_file():
            v = share / f"edk2-{vars_suffix}.fd"
            out.append(FirmwarePair(code, v if v.is_file() else None, source="qemu share dir"))
    for code_s, vars_s in KNOWN_PAIRS.get(arch, ()):
        code = Path(code_s)
        if code.is_file():
            known_vars = Path(vars_s) if vars_s and Path(vars_s).is_file() else None
            out.append(FirmwarePair(code, known_vars, source="known path"))
    return out


def _qemu_share_dirs(qemu_binary: str | None) -> list[Path]:
    dirs = [Path.home() / ".local/share/qemu"]
    if qemu_binary:
        resolved = shutil.which(qemu_binary) or qemu_binary
        dirs.append(Path(resolved).resolve().parent.parent / "share/qemu")
    dirs.extend(QEMU_SHARE_DIRS)
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def find_firmware(
    arch: str,
    images: Sequence[FirmwareImage] = (),
    *,
    descriptor_dirs: Sequence[Path] | None = None,
    share_dirs: Sequence[Path] | None = None,
    qemu_binary: str | None = None,
) -> FirmwarePair:
    """The UEFI firmware pair to boot `arch` with (`firmware.images` first, then what is installed)."""
    if arch not in QEMU_BUNDLED:
        raise LimapyError(f"UEFI firmware for arch {arch!r} is not supported")
    explicit = _from_images(arch, images)
    if explicit is not None:
        return explicit
    candidates: list[FirmwarePair] = []
    if descriptor_dirs is None:
        xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        descriptor_dirs = (Path(xdg) / "qemu/firmware", *DESCRIPTOR_DIRS)
    for f in _descriptor_files(descriptor_dirs):
        pair = _from_descriptor(f, arch)
        if pair is not None:
            candidates.append(pair)
    candidates.extend(_known(arch, share_dirs if share_dirs is not None else _qemu_share_dirs(qemu_binary)))
    for pair in candidates:
        try:
            check_pair(pair, arch)
        except LimapyError as e:
            log.debug("firmware candidate skipped: %s", e.message)
            continue
        return pair
    if candidates:
        return candidates[0]  # check_pair at prepare time names what is wrong with it
    pkg = "ovmf" if arch == "x86_64" else "qemu-efi-aarch64"
    raise LimapyError(
        f"no UEFI firmware found for {arch}",
        hint=f"install it (apt install {pkg}) or set firmware.images to a local code file",
    )


@dataclass(frozen=True)
class VarsPlan:
    """What a UEFI boot attaches, and how the instance's files for it are made (limapy.driver.qemu)."""

    code: Path  # attached read-only: the firmware's own file, or the instance's padded copy of it
    code_source: Path
    pad_code: bool  # aarch64: copy `code_source` to `code`, zero-padded to 64 MiB
    vars: Path  # the instance's writable store
    vars_template: Path | None
    vars_size: int


def plan_vars(pair: FirmwarePair, arch: str, *, padded_code: Path, vars_store: Path) -> VarsPlan:
    """Check the pair and say which files a boot needs; reads sizes only (the store is made by make_vars)."""
    check_pair(pair, arch)
    code, pad = pair.code, False
    if arch == "aarch64":
        want = AARCH64_FLASH
        if _size(pair.code) != AARCH64_FLASH:
            code, pad = padded_code, True
    else:
        assert pair.vars_template is not None  # check_pair guarantees it on x86_64
        want = _size(pair.vars_template)
    if vars_store.exists():
        have = _size(vars_store)
        if have != want:
            raise LimapyError(
                f"the vars store {vars_store} ({have:,} B) does not fit firmware {pair.code} (needs {want:,} B)",
                hint=f"delete {vars_store} to start with a fresh UEFI variable store",
            )
    return VarsPlan(code, pair.code, pad, vars_store, pair.vars_template, want)


def make_vars(plan: VarsPlan) -> None:
    """The instance's padded code copy and vars store, made once (0600, atomically)."""
    if plan.pad_code and not (plan.code.is_file() and _size(plan.code) == AARCH64_FLASH):
        _copy_padded(plan.code_source, plan.code, AARCH64_FLASH)
    if not plan.vars.exists():
        _copy_padded(plan.vars_template, plan.vars, plan.vars_size)


def _copy_padded(src: Path | None, dst: Path, size: int | None) -> None:
    """Write dst atomically: a copy of src (or nothing), zero-padded to `size` when given; mode 0600."""
    tmp = dst.with_name(dst.name + ".tmp")
    if src is not None:
        shutil.copyfile(src, tmp)
    else:
        tmp.write_bytes(b"")
    os.chmod(tmp, 0o600)
    if size is not None and tmp.stat().st_size < size:
        os.truncate(tmp, size)
    os.replace(tmp, dst)
