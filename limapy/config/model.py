"""The typed, frozen spec of an instance: built once from the filled lima.yaml, read by everything else.

`Spec.from_cfg(filled)` is the only place outside `limapy.config` that looks at the raw keys; the filled dict
itself stays for `lima.yaml`, `validate --fill` and `list --json`'s "config". Derived facts that used to be
decided in several modules live here once: how does it boot, which image serves this arch, which rules of its
guest OS apply (limapy.guest.rules; everything else a guest OS decides is limapy.guest's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from limapy.base.errors import LimapyError
from limapy.base.units import parse_size
from limapy.guest.rules import Rules
from limapy.guest.rules import for_os as guest_rules


class OS(StrEnum):
    LINUX = "Linux"
    DARWIN = "Darwin"
    FREEBSD = "FreeBSD"
    WINDOWS = "Windows"


class Arch(StrEnum):
    X86_64 = "x86_64"
    AARCH64 = "aarch64"
    ARMV7L = "armv7l"
    PPC64LE = "ppc64le"
    RISCV64 = "riscv64"
    S390X = "s390x"


class VMType(StrEnum):
    QEMU = "qemu"
    VZ = "vz"
    WSL2 = "wsl2"
    KRUNKIT = "krunkit"


class MountType(StrEnum):
    REVERSE_SSHFS = "reverse-sshfs"
    NINEP = "9p"
    VIRTIOFS = "virtiofs"
    WSL2 = "wsl2"
    SMB = "smb"  # limapy: a private smbd reached through the user network (limapy.guest.smb)


class BootKind(StrEnum):
    UEFI = "uefi"
    BIOS = "bios"
    KERNEL = "kernel"  # QEMU loads the image's kernel and initrd itself (no firmware)


@dataclass(frozen=True)
class File:
    location: str
    arch: str
    digest: str | None = None


@dataclass(frozen=True)
class Image:
    location: str
    arch: str
    digest: str | None = None
    kernel: File | None = None
    initrd: File | None = None
    kernel_cmdline: str | None = None


@dataclass(frozen=True)
class AdditionalDisk:
    name: str
    format: bool | str | None = None


@dataclass(frozen=True)
class FirmwareImage:
    location: str
    arch: str
    vm_type: str | None = None


@dataclass(frozen=True)
class User:
    name: str
    comment: str
    uid: int
    home: str
    shell: str
    passwordless_sudo: bool


@dataclass(frozen=True)
class SSH:
    local_port: int = 0
    load_dot_ssh_pubkeys: bool = False
    forward_agent: bool = False
    forward_x11: bool = False
    forward_x11_trusted: bool = False


@dataclass(frozen=True)
class NineP:
    security_model: str = "none"
    protocol_version: str = "9p2000.L"
    msize: int = 128 << 10
    cache: str = "fscache"


@dataclass(frozen=True)
class SSHFS:
    cache: bool = True
    follow_symlinks: bool = False
    sftp_driver: str = ""


@dataclass(frozen=True)
class Mount:
    location: str
    mount_point: str
    writable: bool = False
    ninep: NineP = field(default_factory=NineP)
    sshfs: SSHFS = field(default_factory=SSHFS)
    virtiofs_queue_size: int = 1024


@dataclass(frozen=True)
class PortForward:
    guest_port_range: tuple[int, int]
    host_port_range: tuple[int, int] | None
    guest_ip: str = "127.0.0.1"
    host_ip: str = "127.0.0.1"
    guest_socket: str = ""
    host_socket: str = ""
    proto: str = "any"
    reverse: bool = False
    ignore: bool = False
    static: bool = False
    guest_ip_must_be_zero: bool = False


@dataclass(frozen=True)
class Provision:
    index: int  # position in `provision`; names its file (%08d) as Lima does
    mode: str
    script: str | None = None
    content: str | bytes | None = None  # bytes: a binary data file (`!!binary` in lima.yaml)
    path: str | None = None
    owner: str | None = None
    permissions: str | None = None
    overwrite: bool = True
    skip_default_dependency_resolution: bool = False
    expression: str | None = None  # `mode: yq`: applied to the file at `path` in the guest
    format: str = "auto"  # `mode: yq`: the file's format (auto: by its extension)
    playbook: str | None = None  # `mode: ansible` (deprecated in Lima): run by ansible-playbook on the host

    @property
    def text(self) -> str | bytes | None:
        """The script, for `mode: data` the content (bytes when it is a binary file), for `mode: yq` the
        expression."""
        if self.mode == "data":
            return self.content
        return self.expression if self.mode == "yq" else self.script


@dataclass(frozen=True)
class CopyToHost:
    guest: str
    host: str
    skip_if_missing: bool = False
    delete_on_stop: bool = False


@dataclass(frozen=True)
class HostResolver:
    enabled: bool = True
    ipv6: bool = False
    hosts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class CACerts:
    remove_defaults: bool = False
    certs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class WindowsOpts:
    virtio_win: tuple[File, ...] = ()
    openssh_msi: tuple[File, ...] = ()
    edition: str | None = None
    image_index: int | None = None
    product_key: str | None = None
    rdp: bool = True
    locale: str | None = None  # osOpts.Windows.locale: format and keyboard (limapy.guest.windows.language)
    openssh_source: str = "msi"  # "msi" (the answer ISO's Win32-OpenSSH MSI) or "capability" (Windows Update)


@dataclass(frozen=True)
class Spec:
    os: OS
    arch: str
    vm_type: str
    cpus: int
    memory: int  # bytes
    disk: int  # bytes
    images: tuple[Image, ...]
    user: User
    additional_disks: tuple[AdditionalDisk, ...] = ()
    legacy_bios: bool = False
    firmware_images: tuple[FirmwareImage, ...] = ()
    tpm: bool = False
    display: str = "none"
    vnc_display: str = "127.0.0.1:0,to=9"
    cpu_type: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    qemu_minimum_version: str | None = None
    ssh: SSH = field(default_factory=SSH)
    mounts: tuple[Mount, ...] = ()
    mount_type: str = "9p"
    mount_types_unsupported: tuple[str, ...] = ()
    mount_inotify: bool = False
    port_forwards: tuple[PortForward, ...] = ()
    provision: tuple[Provision, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    param: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    dns: tuple[str, ...] = ()
    host_resolver: HostResolver = field(default_factory=HostResolver)
    ca_certs: CACerts = field(default_factory=CACerts)
    copy_to_host: tuple[CopyToHost, ...] = ()
    plain: bool = False
    timezone: str = ""
    message: str = ""
    windows: WindowsOpts = field(default_factory=WindowsOpts)

    # -- derived facts -----------------------------------------------------------------------------------------

    @property
    def rules(self) -> Rules:
        """lima.yaml as this guest OS reads it (limapy.guest.rules, found by name)."""
        return guest_rules(self.os.value)

    @property
    def shared_mounts(self) -> tuple[Mount, ...]:
        """The host folders the guest mounts: none in plain mode or where limapy has no way for the guest OS."""
        return () if self.plain or not self.rules.host_folders else self.mounts

    def mounts_of(self, kind: str) -> tuple[Mount, ...]:
        """The shared mounts when `mountType` is `kind` (9p, virtiofs, reverse-sshfs, smb), else none."""
        return self.shared_mounts if self.mount_type == kind else ()

    def image_for_arch(self) -> Image | None:
        return next((img for img in self.images if img.arch == self.arch), None)

    @property
    def image(self) -> Image:
        """The image that serves the instance's arch (the first one, as Lima picks)."""
        img = self.image_for_arch()
        if img is None:
            have = sorted({i.arch for i in self.images})
            raise LimapyError(
                f"the template has no image for arch {self.arch} (it has: {', '.join(have) or 'none'})",
                hint="pick another template, or --set '.arch = \"...\"' to one of those",
            )
        return img

    @property
    def boot_kind(self) -> BootKind:
        """The image's kernel when it has one and the guest OS boots that way (Linux; QEMU's own loader, no
        firmware), else UEFI, or legacy BIOS when asked (x86_64 only)."""
        bios = self.legacy_bios and self.arch == Arch.X86_64
        if self.rules.kernel_boot:
            img = self.image_for_arch()
            if img is not None and img.kernel is not None:
                return BootKind.KERNEL
        return BootKind.BIOS if bios else BootKind.UEFI

    @property
    def virtio_win(self) -> File | None:
        """The virtio-win ISO for this arch; None means Windows gets inbox-driver devices (x86_64 only)."""
        return _for_arch(self.windows.virtio_win, self.arch)

    @property
    def openssh_msi(self) -> File | None:
        """The OpenSSH MSI the answer ISO carries for this arch; None with `opensshSource: capability`."""
        if self.windows.openssh_source == "capability":
            return None
        return _for_arch(self.windows.openssh_msi, self.arch)

    # -- from the filled dict ----------------------------------------------------------------------------------

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> Spec:
        """Read a filled configuration (config.defaults.fill output, validated)."""
        arch = str(cfg.get("arch"))
        user = _m(cfg.get("user"))
        ssh = _m(cfg.get("ssh"))
        video = _m(cfg.get("video"))
        qemu = _m(_m(cfg.get("vmOpts")).get("qemu"))
        win = _m(_m(cfg.get("osOpts")).get("Windows"))
        hr = _m(cfg.get("hostResolver"))
        ca = _m(cfg.get("caCerts"))
        return cls(
            os=OS(str(cfg.get("os") or "Linux")),
            arch=arch,
            vm_type=str(cfg.get("vmType") or "qemu"),
            cpus=int(cfg.get("cpus") or 0),
            memory=parse_size(cfg.get("memory") or 0),
            disk=parse_size(cfg.get("disk") or 0),
            images=tuple(_image(i, arch) for i in cfg.get("images") or [] if isinstance(i, Mapping)),
            additional_disks=tuple(_disk(d) for d in cfg.get("additionalDisks") or []),
            legacy_bios=bool(_m(cfg.get("firmware")).get("legacyBIOS")),
            firmware_images=tuple(
                FirmwareImage(str(f.get("location") or ""), str(f.get("arch") or arch), _opt(f.get("vmType")))
                for f in _m(cfg.get("firmware")).get("images") or [] if isinstance(f, Mapping)
            ),
            tpm=bool(cfg.get("tpm")),
            display=str(video.get("display") or "none"),
            vnc_display=str(_m(video.get("vnc")).get("display") or "127.0.0.1:0,to=9"),
            cpu_type=MappingProxyType({str(k): str(v) for k, v in _m(qemu.get("cpuType")).items() if v}),
            qemu_minimum_version=_opt(qemu.get("minimumVersion")),
            user=User(
                name=str(user.get("name") or ""),
                comment=str(user.get("comment") or ""),
                uid=int(user.get("uid") or 0),
                home=str(user.get("home") or ""),
                # the guest OS's default (FillDefault's), also for a spec of a partial config
                shell=str(user.get("shell") or guest_rules(str(cfg.get("os") or "Linux")).implied_shell),
                passwordless_sudo=user.get("passwordlessSudo") is not False,
            ),
            ssh=SSH(
                local_port=int(ssh.get("localPort") or 0),
                load_dot_ssh_pubkeys=bool(ssh.get("loadDotSSHPubKeys")),
                forward_agent=bool(ssh.get("forwardAgent")),
                forward_x11=bool(ssh.get("forwardX11")),
                forward_x11_trusted=bool(ssh.get("forwardX11Trusted")),
            ),
            mounts=tuple(_mount(m) for m in cfg.get("mounts") or [] if isinstance(m, Mapping)),
            mount_type=str(cfg.get("mountType") or "9p"),
            mount_types_unsupported=tuple(str(t) for t in cfg.get("mountTypesUnsupported") or []),
            mount_inotify=bool(cfg.get("mountInotify")),
            port_forwards=tuple(_forward(p) for p in cfg.get("portForwards") or [] if isinstance(p, Mapping)),
            provision=tuple(
                _provision(i, p) for i, p in enumerate(cfg.get("provision") or []) if isinstance(p, Mapping)
            ),
            env=MappingProxyType({str(k): "" if v is None else str(v) for k, v in _m(cfg.get("env")).items()}),
            param=MappingProxyType({str(k): "" if v is None else str(v) for k, v in _m(cfg.get("param")).items()}),
            dns=tuple(str(d) for d in cfg.get("dns") or []),
            host_resolver=HostResolver(
                enabled=hr.get("enabled") is not False,
                ipv6=bool(hr.get("ipv6")),
                hosts=MappingProxyType({str(k): str(v) for k, v in _m(hr.get("hosts")).items()}),
            ),
            ca_certs=CACerts(
                remove_defaults=bool(ca.get("removeDefaults")),
                certs=tuple(str(c) for c in ca.get("certs") or []),
                files=tuple(str(f) for f in ca.get("files") or []),
            ),
            copy_to_host=tuple(
                CopyToHost(str(c.get("guest") or ""), str(c.get("host") or ""), bool(c.get("skipIfMissing")),
                           bool(c.get("deleteOnStop")))
                for c in cfg.get("copyToHost") or [] if isinstance(c, Mapping)
            ),
            plain=bool(cfg.get("plain")),
            timezone=str(cfg.get("timezone") or ""),
            message=str(cfg.get("message") or ""),
            windows=WindowsOpts(
                virtio_win=_files(win.get("virtioWin"), arch),
                openssh_msi=_files(win.get("opensshMsi"), arch),
                edition=_opt(win.get("edition")),
                image_index=int(win["imageIndex"]) if win.get("imageIndex") is not None else None,
                product_key=_opt(win.get("productKey")),
                rdp=win.get("rdp") is not False,
                locale=_opt(win.get("locale")),
                openssh_source=str(win.get("opensshSource") or "msi"),
            ),
        )


def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value).strip()


def _file(f: Mapping[str, Any], arch: str) -> File:
    return File(str(f.get("location") or ""), str(f.get("arch") or arch), _opt(f.get("digest")))


def _files(value: Any, arch: str) -> tuple[File, ...]:
    items = [value] if isinstance(value, Mapping) else value or []
    return tuple(_file(f, arch) for f in items if isinstance(f, Mapping) and f.get("location"))


def _for_arch(files: tuple[File, ...], arch: str) -> File | None:
    return next((f for f in files if f.arch == arch), None)


def _image(img: Mapping[str, Any], arch: str) -> Image:
    img_arch = str(img.get("arch") or arch)
    kernel = _m(img.get("kernel"))
    initrd = _m(img.get("initrd"))
    return Image(
        location=str(img.get("location") or ""),
        arch=img_arch,
        digest=_opt(img.get("digest")),
        kernel=_file(kernel, img_arch) if kernel.get("location") else None,
        initrd=_file(initrd, img_arch) if initrd.get("location") else None,
        kernel_cmdline=_opt(kernel.get("cmdline")),
    )


def _disk(d: Any) -> AdditionalDisk:
    if isinstance(d, Mapping):
        return AdditionalDisk(str(d.get("name") or ""), d.get("format"))
    return AdditionalDisk(str(d))


def _mount(m: Mapping[str, Any]) -> Mount:
    location = str(m.get("location") or "")
    writable = bool(m.get("writable"))
    p9 = _m(m.get("9p"))
    fs = _m(m.get("sshfs"))
    return Mount(
        location=location,
        mount_point=str(m.get("mountPoint") or location),
        writable=writable,
        ninep=NineP(
            security_model=str(p9.get("securityModel") or "none"),
            protocol_version=str(p9.get("protocolVersion") or "9p2000.L"),
            msize=parse_size(p9.get("msize") or "128KiB"),
            cache=str(p9.get("cache") or ("mmap" if writable else "fscache")),
        ),
        sshfs=SSHFS(
            cache=fs.get("cache") is not False,
            follow_symlinks=bool(fs.get("followSymlinks")),
            sftp_driver=str(fs.get("sftpDriver") or ""),
        ),
        virtiofs_queue_size=int(_m(m.get("virtiofs")).get("queueSize") or 1024),
    )


def _range(value: Any) -> tuple[int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None


def _forward(p: Mapping[str, Any]) -> PortForward:
    return PortForward(
        guest_port_range=_range(p.get("guestPortRange")) or (1, 65535),
        host_port_range=_range(p.get("hostPortRange")),
        guest_ip=str(p.get("guestIP") or "127.0.0.1"),
        host_ip=str(p.get("hostIP") or "127.0.0.1"),
        guest_socket=str(p.get("guestSocket") or ""),
        host_socket=str(p.get("hostSocket") or ""),
        proto=str(p.get("proto") or "any").lower(),
        reverse=bool(p.get("reverse")),
        ignore=bool(p.get("ignore")),
        static=bool(p.get("static")),
        guest_ip_must_be_zero=bool(p.get("guestIPMustBeZero")),
    )


def _provision(i: int, p: Mapping[str, Any]) -> Provision:
    def s(key: str) -> str | None:
        v = p.get(key)
        return None if v is None else str(v)

    return Provision(
        index=i,
        mode=str(p.get("mode") or "system"),
        script=s("script"),
        content=p["content"] if isinstance(p.get("content"), bytes) else s("content"),
        path=s("path"),
        owner=s("owner"),
        permissions=s("permissions"),
        overwrite=p.get("overwrite") is not False,
        skip_default_dependency_resolution=bool(p.get("skipDefaultDependencyResolution")),
        expression=s("expression"),
        format=s("format") or "auto",
        playbook=s("playbook"),
    )
