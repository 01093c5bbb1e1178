"""The cases of the golden tests (tests/integration/test_golden_cli.py, test_golden_media.py): every shipped
template and every layout, with local stand-ins for their images (a tiny qcow2 for Linux, stand-in install ISOs
of tests/winiso.py for Windows), and what depends on the run normalized (the instance home, the stand-in dir, the
SSH/RDP ports, the MAC, the host's home and the mount tags made from it, CPU/memory when host-derived)."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from limapy.cli import main
from tests.winiso import SERVER_EVAL_EDITIONS, SERVER_EVAL_LABEL, build_standin_iso, build_virtio_win_iso

NAME = "vm"


def build_media(d: Path) -> Path:
    """The local stand-ins every case's template points at (no downloads here)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(d / "linux.qcow2"), "64M"], check=True)
    (d / "vmlinuz").write_bytes(b"stand-in kernel\n")
    (d / "initrd.img").write_bytes(b"stand-in initrd\n")
    build_standin_iso(d / "Win11_x64.iso", arch="x86_64")
    build_standin_iso(d / "Win11_Arm64.iso", arch="aarch64")
    build_standin_iso(d / "Server_eval.iso", editions=SERVER_EVAL_EDITIONS, label=SERVER_EVAL_LABEL, server=True)
    build_virtio_win_iso(d / "virtio-win.iso")
    return d


@contextlib.contextmanager
def media_dir() -> Iterator[Path]:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    d = Path(tempfile.mkdtemp(prefix="lpg-media-", dir="/tmp"))
    try:
        yield build_media(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def linux(template: str, arch: str, *extra: str) -> tuple[str, list[str]]:
    pos = 0 if arch == "x86_64" else 1
    return template, [f'.arch = "{arch}"', f'.images[{pos}].location = "$MEDIA/linux.qcow2"', *extra]


def kernel(arch: str) -> tuple[str, list[str]]:
    pos = 0 if arch == "x86_64" else 1
    return linux("template:default", arch,
                 f'.images[{pos}].kernel = {{location: "$MEDIA/vmlinuz", cmdline: "console=ttyS0 root=/dev/vda1"}}',
                 f'.images[{pos}].initrd = {{location: "$MEDIA/initrd.img"}}')  # fmt: skip


def windows(template: str, arch: str, *extra: str, virtio: bool = False) -> tuple[str, list[str]]:
    iso = "Win11_x64.iso" if arch == "x86_64" else "Win11_Arm64.iso"
    sets = [f'.arch = "{arch}"', f'.images[{0 if arch == "x86_64" else 1}].location = "$MEDIA/{iso}"',
            '.osOpts.Windows.opensshSource = "capability"']  # the MSI would be a download
    if virtio or arch == "aarch64":
        sets.append(f'.osOpts.Windows.virtioWin = [{{location: "$MEDIA/virtio-win.iso", arch: "{arch}"}}]')
    return template, [*sets, *extra]


CASES: dict[str, tuple[str, list[str]]] = {
    "default-x86_64-uefi": linux("template:default", "x86_64"),
    "default-aarch64-uefi": linux("template:default", "aarch64"),
    "default-x86_64-bios": linux("template:default", "x86_64", ".firmware.legacyBIOS = true"),
    "default-x86_64-kernel": kernel("x86_64"),
    "default-x86_64-virtiofs": linux("template:default", "x86_64", '.mountType = "virtiofs"'),
    "default-x86_64-9p": linux("template:default", "x86_64", '.mountType = "9p"', ".mountTypesUnsupported = []"),
    "default-aarch64-kernel": kernel("aarch64"),
    "debian-x86_64": linux("template:debian", "x86_64"),
    "debian-aarch64": linux("template:debian", "aarch64"),
    "ubuntu-x86_64": linux("template:ubuntu", "x86_64"),
    "ubuntu-aarch64": linux("template:ubuntu", "aarch64"),
    # limapy's distribution templates (their images come from a `_images/` base; the edit puts the stand-in first)
    **{f"{t}-x86_64": linux(f"template:{t}", "x86_64", "del(.images[0].digest)") for t in (
        "debian-12", "debian-13", "ubuntu-22.04", "ubuntu-24.04", "ubuntu-25.10", "fedora-44", "alpine-3.23",
        "archlinux", "opensuse-leap-16", "rocky-9", "rocky-10", "almalinux-9", "almalinux-10", "centos-stream-9",
        "centos-stream-10", "docker", "podman")},
    "debian-13-aarch64": linux("template:debian-13", "aarch64", "del(.images[1].digest)"),
    "windows-x86_64-tpm": windows("template:windows", "x86_64"),
    "windows-x86_64-notpm": windows("template:windows", "x86_64", ".tpm = false"),
    "windows-x86_64-virtiowin-tpm": windows("template:windows", "x86_64", virtio=True),
    "windows-x86_64-virtiowin-notpm": windows("template:windows", "x86_64", ".tpm = false", virtio=True),
    "windows-x86_64-bios": windows("template:windows", "x86_64", ".tpm = false", ".firmware.legacyBIOS = true"),
    "windows-aarch64-tpm": windows("template:windows", "aarch64"),
    "windows-aarch64-notpm": windows("template:windows", "aarch64", ".tpm = false"),
    "windows-11-x86_64": windows("template:windows-11", "x86_64"),
    "experimental-windows-aarch64": windows("template:experimental/windows", "aarch64"),
    "windows-2025-x86_64": (
        "template:windows-2025",
        ['.images[0].location = "$MEDIA/Server_eval.iso"', "del(.images[0].digest)",
         '.osOpts.Windows.virtioWin = [{location: "$MEDIA/virtio-win.iso", arch: "x86_64"}]',
         '.osOpts.Windows.opensshSource = "capability"'],
    ),
}


def host_defaults() -> tuple[int, int]:
    """The CPUs and memory (MiB) Lima's defaults give on this host, as limapy fills them."""
    from limapy.config import hostinfo
    from limapy.config.defaults import fill
    from limapy.config.model import Spec

    spec = Spec.from_cfg(fill({}, host=hostinfo.detect(), name=NAME, instance_dir=None))
    return spec.cpus, spec.memory >> 20


def replace_paths(s: str, paths: list[tuple[Path | str, str]]) -> str:
    """Each (path, name): the path replaced by the name where it is a whole path, not a prefix of a longer name
    (a short $HOME such as `/h` is not every "/h" in the text)."""
    for value, name in paths:
        if str(value) not in ("", "/"):
            s = re.sub(re.escape(str(value)) + r"(?![\w.-])", lambda _m, n=name: n, s)
    return s


def normalize(argv: list[str], home: Path, media: Path) -> list[str]:
    cpus, mib = host_defaults()
    out = []
    for i, a in enumerate(argv):
        a = replace_paths(a, [(home, "$LIMAPY_HOME"), (media, "$MEDIA"), (Path.home(), "$HOME")])
        a = re.sub(r"(mount_tag=|tag=)lima-[0-9a-f]{16}", r"\1$MOUNT_TAG", a)  # hashes the host's paths
        a = re.sub(r"hostfwd=tcp:127\.0\.0\.1:\d+-:22\b", "hostfwd=tcp:127.0.0.1:$SSH_PORT-:22", a)
        a = re.sub(r"hostfwd=tcp:127\.0\.0\.1:\d+-:3389\b", "hostfwd=tcp:127.0.0.1:$RDP_PORT-:3389", a)
        a = re.sub(r"mac=52:55:55(:[0-9a-f]{2}){3}", "mac=$MAC", a)
        if i and argv[i - 1] == "-smp" and a == f"{cpus},sockets=1,cores={cpus},threads=1":
            a = "$CPUS,sockets=1,cores=$CPUS,threads=1"
        if i and argv[i - 1] == "-m" and a == str(mib):
            a = "$MEMORY_MIB"
        a = a.replace(f"memory-backend-memfd,id=mem,size={mib}M,", "memory-backend-memfd,id=mem,size=$MEMORY_MIBM,")
        out.append(a)
    return out


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = main(list(args))
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    out, err = capsys.readouterr()
    return rc, out, err
