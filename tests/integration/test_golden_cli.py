"""From template to argv, through the CLI: `limapy create` then `limapy start --dry-run` for every shipped template
and every layout (Linux x86_64/aarch64 with UEFI, legacy BIOS or the image's kernel; Windows x86_64 with and
without virtio-win, with and without a TPM; Windows aarch64 with and without a TPM), compared with
tests/golden/cli/<case>.argv (one argument per line) through tests/golden.py; LIMAPY_REGEN_GOLDEN=1 rewrites them.

The templates' images are replaced by local stand-ins (no downloads here): a tiny qcow2 for Linux, stand-in install
ISOs (tests/winiso.py) for Windows. What depends on the run is normalized: the instance home, the stand-in dir,
the SSH/RDP ports, the MAC, the host's home and the mount tags made from it, and CPU/memory when they are the
host-derived defaults.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from limapy.cli import main
from tests.golden import compare
from tests.winiso import SERVER_EVAL_EDITIONS, SERVER_EVAL_LABEL, build_standin_iso, build_virtio_win_iso

NAME = "vm"


@pytest.fixture(scope="module")
def media() -> Iterator[Path]:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    d = Path(tempfile.mkdtemp(prefix="lpg-media-", dir="/tmp"))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(d / "linux.qcow2"), "64M"], check=True)
    (d / "vmlinuz").write_bytes(b"stand-in kernel\n")
    (d / "initrd.img").write_bytes(b"stand-in initrd\n")
    build_standin_iso(d / "Win11_x64.iso", arch="x86_64")
    build_standin_iso(d / "Win11_Arm64.iso", arch="aarch64")
    build_standin_iso(d / "Server_eval.iso", editions=SERVER_EVAL_EDITIONS, label=SERVER_EVAL_LABEL, server=True)
    build_virtio_win_iso(d / "virtio-win.iso")
    yield d
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


def normalize(argv: list[str], home: Path, media: Path) -> list[str]:
    cpus, mib = host_defaults()
    out = []
    for i, a in enumerate(argv):
        a = a.replace(str(home), "$LIMAPY_HOME").replace(str(media), "$MEDIA").replace(str(Path.home()), "$HOME")
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


@pytest.mark.parametrize("case", sorted(CASES))
def test_template_to_argv(
    case: str, media: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if "virtiofs" in case and os.getuid() != 0 and shutil.which("virtiofsd") is None:
        pytest.skip("QEMU's own virtiofsd runs as root only, and the standalone virtiofsd is not installed")
    home = Path(tempfile.mkdtemp(prefix="lpg-", dir="/tmp"))
    try:
        monkeypatch.setenv("LIMAPY_HOME", str(home))
        monkeypatch.setenv("LIMAPY_CACHE_DIR", str(home / "_cache"))
        monkeypatch.setenv("LIMAPY_QEMU_ACCEL", "tcg")
        monkeypatch.delenv("LIMAPY_DRIVER", raising=False)
        template, sets = CASES[case]
        flags = [a for s in sets for a in ("--set", s.replace("$MEDIA", str(media)))]
        rc, _, err = cli(capsys, "create", "--name", NAME, *flags, template)
        assert rc == 0, err
        rc, out, err = cli(capsys, "start", "--dry-run", NAME)
        assert rc == 0, err
        argv = shlex.split(out.strip().splitlines()[-1])
        compare(f"cli/{case}.argv", "\n".join(normalize(argv, home, media)) + "\n")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_every_shipped_template_has_a_case() -> None:
    from limapy.dirs import shipped_templates_dir

    root = shipped_templates_dir()
    shipped = {p.relative_to(root).as_posix()[: -len(".yaml")] for p in root.rglob("*.yaml")}
    shipped = {n for n in shipped if not any(part.startswith("_") for part in n.split("/"))}  # bases
    covered = {t.removeprefix("template:") for t, _ in CASES.values()}
    for name in sorted(shipped):  # an alias (`base: "template:TARGET"` and nothing else) is its target's case
        body = [ln for ln in (root / f"{name}.yaml").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        m = re.fullmatch(r'base: "template:([\w./-]+)"', body[0]) if len(body) == 1 else None
        if m and m.group(1) in covered | shipped:
            covered.add(name)
    assert shipped <= covered, f"templates without a golden argv: {sorted(shipped - covered)}"
