"""The host tools limapy drives, which of them a request needs, and how to install each on the usual systems.

One module for `limapy doctor` (a table of every tool, each with what it is needed for) and for `create` and
`start` (which refuse, before any download, when something they need is missing: a missing QEMU used to show
up after the image download, as `qemu-img: command not found`). What is needed follows the request:

- always: `qemu-img` (every disk is a qcow2 overlay) and the OpenSSH client (`shell`, `copy`, forwards);
- the QEMU driver, or libvirt on this host: `qemu-system-<arch>` for each guest arch, and UEFI firmware for
  the arches that boot by UEFI (a guest booted by its image's kernel, or by legacy BIOS, needs none);
- `tpm: true` (Windows 11): swtpm; `mountType: virtiofs` with mounts: virtiofsd; `mountType: smb` with mounts
  (a Windows guest's default): samba's smbd; a `.zst` image: zstd;
- `--driver libvirt`: the libvirt Python binding, and on this host libvirtd.
Samba is listed as optional for Windows guests without mounts, as is FreeRDP (`limapy rdp`).

Packages are named for Debian/Ubuntu (apt), Fedora (dnf), Arch (pacman) and macOS (Homebrew).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from limapy.base.errors import ExternalToolError, LimapyError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from limapy.config.model import Spec
    from limapy.instance import store

#: The systems an install line is given for: (key, name, command prefix).
SYSTEMS = (
    ("debian", "Debian/Ubuntu", "sudo apt install"),
    ("fedora", "Fedora", "sudo dnf install"),
    ("arch", "Arch Linux", "sudo pacman -S"),
    ("macos", "macOS (Homebrew)", "brew install"),
)
ARCHES = ("x86_64", "aarch64")
#: The engines that run QEMU on this host (libvirt: unless its URI names another host).
QEMU_ENGINES = ("qemu", "libvirt")


@dataclass(frozen=True)
class Tool:
    """A host tool: its name, its package on each system ("" where there is none), and how it is found."""

    name: str
    packages: dict[str, str]
    find: Callable[[], str | None]
    note: str = ""  # how else to provide it (an environment variable, pip)


@dataclass(frozen=True)
class Need:
    """A tool wanted for a reason; `required` ones make `doctor` fail and `create`/`start` refuse."""

    tool: Tool
    why: str
    required: bool = True
    found: str | None = field(default=None, compare=False)

    @property
    def missing(self) -> bool:
        return self.required and self.found is None


def _which(name: str) -> Callable[[], str | None]:
    return lambda: shutil.which(name)


def _qemu(arch: str) -> Callable[[], str | None]:
    def find() -> str | None:
        from limapy.qemu import host

        try:
            return host.find_binary(arch, host.HostProbe())
        except LimapyError:
            return None

    return find


def _firmware(arch: str) -> Callable[[], str | None]:
    def find() -> str | None:
        from limapy.qemu import firmware

        try:
            return str(firmware.find_firmware(arch, qemu_binary=_qemu(arch)()).code)
        except LimapyError:
            return None

    return find


def _virtiofsd() -> str | None:
    from limapy.qemu import virtiofsd

    try:
        return virtiofsd.find().binary
    except LimapyError:
        return None


def _smbd() -> str | None:
    from limapy.guest import smb

    return smb.find_smbd()


def _ssh() -> str | None:
    import shlex

    custom = os.environ.get("SSH", "").strip()  # Lima's override of the ssh command
    return shutil.which(shlex.split(custom)[0] if custom else "ssh")


def _binding() -> str | None:
    spec = importlib.util.find_spec("libvirt")
    return spec.origin if spec is not None and spec.origin else None


LIBVIRT_SOCKETS = (Path("/run/libvirt/libvirt-sock"), Path("/run/libvirt/virtqemud-sock"))


def _libvirtd() -> str | None:
    return next((str(p) for p in LIBVIRT_SOCKETS if p.exists()), None)


def _pkgs(debian: str, fedora: str, arch: str, macos: str) -> dict[str, str]:
    return {"debian": debian, "fedora": fedora, "arch": arch, "macos": macos}


QEMU_PACKAGES = {
    "x86_64": _pkgs("qemu-system-x86", "qemu-system-x86-core", "qemu-system-x86", "qemu"),
    "aarch64": _pkgs("qemu-system-arm", "qemu-system-aarch64-core", "qemu-system-aarch64", "qemu"),
}
FIRMWARE_PACKAGES = {
    "x86_64": _pkgs("ovmf", "edk2-ovmf", "edk2-ovmf", "qemu"),
    "aarch64": _pkgs("qemu-efi-aarch64", "edk2-aarch64", "edk2-aarch64", "qemu"),
}
LIBVIRT_BUILD = _pkgs("libvirt-dev pkg-config gcc python3-dev", "libvirt-devel pkgconf-pkg-config gcc python3-devel",
                      "libvirt pkgconf gcc", "libvirt pkg-config")  # fmt: skip


def qemu_tool(arch: str) -> Tool:
    from limapy.qemu.host import binary_env_var

    return Tool(f"qemu-system-{arch}", QEMU_PACKAGES[arch], _qemu(arch), note=f"or set ${binary_env_var(arch)}")


def firmware_tool(arch: str) -> Tool:
    name = "UEFI firmware (OVMF)" if arch == "x86_64" else "UEFI firmware (AAVMF)"
    return Tool(f"{name} for {arch}", FIRMWARE_PACKAGES[arch], _firmware(arch), note="or set firmware.images")


QEMU_IMG = Tool("qemu-img", _pkgs("qemu-utils", "qemu-img", "qemu-img", "qemu"), _which("qemu-img"))
SSH = Tool("ssh (OpenSSH client)", _pkgs("openssh-client", "openssh-clients", "openssh", "openssh"), _ssh,
           note="macOS has it built in; or set $SSH")  # fmt: skip
SWTPM = Tool("swtpm", _pkgs("swtpm swtpm-tools", "swtpm swtpm-tools", "swtpm", "swtpm"), _which("swtpm"),
             note="or set `tpm: false` (Windows 11 then skips its TPM check)")  # fmt: skip
VIRTIOFSD = Tool("virtiofsd", _pkgs("virtiofsd", "virtiofsd", "virtiofsd", ""), _virtiofsd,
                 note="Linux hosts only")  # fmt: skip
SMBD = Tool("smbd (samba)", _pkgs("samba", "samba", "samba", "samba"), _smbd,
            note="or set `plain: true` (no host folders)")  # fmt: skip
ZSTD = Tool("zstd", _pkgs("zstd", "zstd", "zstd", "zstd"), _which("zstd"))
FREERDP = Tool("xfreerdp (FreeRDP)", _pkgs("freerdp2-x11", "freerdp", "freerdp", "freerdp"),
               lambda: shutil.which("xfreerdp") or shutil.which("xfreerdp3"))  # fmt: skip
LIBVIRTD = Tool("libvirtd", _pkgs("libvirt-daemon-system", "libvirt-daemon-kvm", "libvirt", "libvirt"), _libvirtd,
                note="and start it: sudo systemctl start libvirtd")  # fmt: skip
BINDING = Tool("libvirt-python (the libvirt binding)", LIBVIRT_BUILD, _binding,
               note="then: pipx inject limapy libvirt-python (or pip install 'limapy[libvirt]')")  # fmt: skip


class Request:
    """What the user asks for: the guest arches, Windows (a TPM), virtiofs mounts, zstd images, the engine."""

    def __init__(
        self,
        arches: Iterable[str] = (),
        *,
        uefi: Iterable[str] | None = None,
        tpm: bool = False,
        windows: bool = False,
        virtiofs: bool = False,
        smb: bool = False,
        zstd: bool = False,
        driver: str = "qemu",
        connect: str | None = None,
    ) -> None:
        self.arches = tuple(dict.fromkeys(arches)) or (host_arch(),)
        self.uefi = self.arches if uefi is None else tuple(uefi)
        self.tpm, self.windows, self.virtiofs, self.smb, self.zstd = tpm, windows, virtiofs, smb, zstd
        self.driver, self.connect = driver, connect

    @classmethod
    def of(cls, spec: Spec, driver: str = "qemu", connect: str | None = None) -> Request:
        from limapy import guest
        from limapy.config.model import BootKind

        image = spec.image_for_arch()
        zst = image is not None and image.location.endswith(".zst")
        return cls(
            [spec.arch], uefi=[spec.arch] if spec.boot_kind is BootKind.UEFI and not spec.firmware_images else [],
            tpm=spec.tpm, windows=guest.for_spec(spec).remote_desktop, virtiofs=bool(spec.mounts_of("virtiofs")),
            smb=bool(spec.mounts_of("smb")), zstd=zst,
            driver=driver, connect=connect,
        )  # fmt: skip

    @property
    def remote(self) -> bool:
        """A libvirt host elsewhere runs QEMU there: this host needs no QEMU or firmware of its own."""
        if self.driver != "libvirt":
            return False
        uri = self.connect or os.environ.get("LIBVIRT_DEFAULT_URI") or ""
        return urlsplit(uri).hostname not in (None, "", "localhost", "127.0.0.1")


def for_instance(inst: store.Instance, spec: Spec) -> Request:
    """What starting `inst` needs: its spec, its engine and (libvirt) the host it lives on."""
    from limapy import driver

    try:
        uri: str | None = (inst.dir / "driver.uri").read_text().strip() or None
    except OSError:
        uri = None
    return Request.of(spec, driver.name_of(inst), uri)


def accelerator(arch: str) -> str:
    """How a guest of `arch` would run here: `kvm`, `hvf`, or `tcg (...why, slow)`."""
    from limapy.qemu import host

    probe = host.HostProbe()
    try:
        accel, notice = host.choose_accel(arch, host.normalize_arch(probe.machine), probe)
    except LimapyError as e:
        return e.message
    return f"{accel} ({notice})" if notice else accel


def host_arch() -> str:
    import platform

    from limapy.qemu.host import normalize_arch

    return normalize_arch(platform.machine())


def needs(req: Request) -> list[Need]:
    """Every tool `req` needs (and the optional ones it could use), in the order `doctor` shows them."""
    out = [Need(QEMU_IMG, "every instance (disks are qcow2 overlays)"), Need(SSH, "limapy shell, copy, forwards")]
    qemu_here = req.driver in QEMU_ENGINES and not req.remote  # another engine (a plugin) brings its own
    if qemu_here:
        for arch in req.arches:
            out.append(Need(qemu_tool(arch), f"{arch} guests"))
        for arch in req.uefi:
            out.append(Need(firmware_tool(arch), f"{arch} guests booted by UEFI"))
    if req.tpm and qemu_here:
        out.append(Need(SWTPM, "a TPM (`tpm: true`; Windows 11)"))
    if req.virtiofs and qemu_here:
        out.append(Need(VIRTIOFSD, "mountType: virtiofs"))
    if req.smb and qemu_here:
        out.append(Need(SMBD, "host folders over SMB (mountType: smb)"))
    elif req.windows and qemu_here:
        out.append(Need(SMBD, "host folders in Windows guests (mountType: smb)", required=False))
    if req.zstd:
        out.append(Need(ZSTD, "an image compressed with zstd"))
    if req.driver == "libvirt":
        out.append(Need(BINDING, "--driver libvirt"))
        if not req.remote:
            out.append(Need(LIBVIRTD, "--driver libvirt on this host"))
    if req.windows:
        out.append(Need(FREERDP, "limapy rdp (Remote Desktop to Windows guests)", required=False))
    return [Need(n.tool, n.why, n.required, n.tool.find()) for n in out]


def system() -> str | None:
    """This host's system among SYSTEMS (by /etc/os-release's ID and ID_LIKE; macOS by sys.platform)."""
    if sys.platform == "darwin":
        return "macos"
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return None
    ids: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids += value.strip().strip('"').split()
    for ident in ids:
        for key, names in (("debian", ("debian", "ubuntu")), ("fedora", ("fedora", "rhel", "centos")),
                           ("arch", ("arch", "archlinux", "manjaro"))):  # fmt: skip
            if ident in names:
                return key
    return None


def install_lines(tools: Sequence[Tool], systems: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(system name, the one command that installs `tools` there) for each system (those given, else all)."""
    out = []
    for key, name, command in SYSTEMS:
        if systems is not None and key not in systems:
            continue
        pkgs = list(dict.fromkeys(p for t in tools for p in t.packages.get(key, "").split()))
        if pkgs:
            out.append((name, f"{command} {' '.join(pkgs)}"))
    return out


def require(req: Request) -> None:
    """Refuse (one line, the install command for this host in the hint) when a tool `req` needs is missing."""
    missing = [n for n in needs(req) if n.missing]
    if not missing:
        return
    here = system()
    lines = install_lines([n.tool for n in missing], [here] if here else None)
    what = ", ".join(f"{n.tool.name} ({n.why})" for n in missing)
    install = "; ".join(f"{name}: {cmd}" for name, cmd in lines)
    notes = "".join(f"{n.tool.name}: {n.tool.note}; " for n in missing if n.tool.note)
    raise ExternalToolError(
        f"missing on this host: {what}",
        hint=(f"install: {install}; " if install else "") + notes + "`limapy doctor` lists what limapy needs",
    )
