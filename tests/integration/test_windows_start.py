"""Windows instances through the real CLI, without Windows: stand-in install ISOs (tests/winiso.py) whose
edition order makes Lima's fixed indexes wrong.

- `limapy start --dry-run` on templates/experimental/windows.yaml picks the right image index (read back from
  autounattend.xml inside the instance's cidata.iso), and the printed argv runs under real QEMU (TCG) for
  x86_64 and aarch64 until the firmware writes to serial.log; `limapy screenshot win` (a prefix) then writes
  a PNG. One x86_64 case runs with `tpm: true` and swtpm started as the host agent starts it.
- Refusals before anything is created: missing ISO, an ISO for the other arch, an unknown edition,
  `tpm: true` without swtpm on PATH. One `limapy:` line each (plus its hint), exit non-zero, no instance dir.
- Instance prefixes: `win` reaches `windows`; `w` is ambiguous between `windows` and `web`.
- The generated Windows password never appears in any CLI output.

Each QEMU case takes 10-40 s under TCG; one QEMU at a time.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.winiso import (
    ARM64_EDITIONS,
    SERVER_EVAL_EDITIONS,
    SERVER_EVAL_LABEL,
    X64_EDITIONS,
    build_standin_iso,
    build_virtio_win_iso,
    virtio_win_file,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "templates" / "experimental" / "windows.yaml"
# Where each arch's install ISO sits in the shipped template (images[0] x86_64, images[1] aarch64).
IMAGE_POS = {"x86_64": 0, "aarch64": 1}
PRO = {"x86_64": X64_EDITIONS.index("Windows 11 Pro") + 1, "aarch64": ARM64_EDITIONS.index("Windows 11 Pro") + 1}
LIMA_FIXED = {"x86_64": 6, "aarch64": 3}
FIRMWARE_TEXT = re.compile(rb"BdsDxe|UEFI Interactive Shell|Shell> |startup\.nsh|EFI stub|DVD-ROM|TianoCore")


@pytest.fixture(scope="module")
def isos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("isos")
    return {
        "x86_64": build_standin_iso(d / "Win11_x64.iso", arch="x86_64"),
        "aarch64": build_standin_iso(d / "Win11_Arm64.iso", arch="aarch64"),
        "virtio-win": build_virtio_win_iso(d / "virtio-win.iso"),
        "server-eval": build_standin_iso(
            d / "Server2025_eval.iso", editions=SERVER_EVAL_EDITIONS, label=SERVER_EVAL_LABEL, server=True
        ),
        "server-retail": build_standin_iso(d / "Server2025.iso", server=True),
    }


@pytest.fixture
def home() -> Iterator[Path]:
    """A short LIMAPY_HOME (unix socket paths); any QEMU/swtpm started from it is killed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="lpw-", dir="/tmp"))
    yield path
    for pidfile in path.glob("*/*.pid"):
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        except (ValueError, OSError):
            pass
    shutil.rmtree(path, ignore_errors=True)


def limapy(
    home: Path, *args: str, path_env: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LIMAPY_HOME=str(home), PYTHONPATH=str(REPO))
    if path_env is not None:
        env["PATH"] = path_env
    return subprocess.run(
        [sys.executable, "-m", "limapy", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def prepare(home: Path, name: str) -> subprocess.CompletedProcess[str]:
    """The effects of a start short of booting (hack/prepare.py): `start --dry-run` writes nothing."""
    env = dict(os.environ, LIMAPY_HOME=str(home))
    return subprocess.run(
        [sys.executable, str(REPO / "hack" / "prepare.py"), name], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def windows_sets(
    arch: str, iso: Path | str, *, tpm: bool = False, extra: tuple[str, ...] = (), virtio_win: Path | None = None,
    openssh: str = "capability",
) -> list[str]:
    """--set flags for the shipped template; aarch64 needs virtio-win, which the tests give as a local stand-in
    (the template's entry is a 700 MiB download)."""
    sets = [
        f'.arch = "{arch}"',
        f'.images[{IMAGE_POS[arch]}].location = "{iso}"',
        f".tpm = {'true' if tpm else 'false'}",
        '.video.display = "none"',
        ".cpus = 2",
        f'.osOpts.Windows.opensshSource = "{openssh}"',  # the template's MSI is a download (no network here)
        *extra,
    ]
    if virtio_win is not None:
        sets.append(f'.osOpts.Windows.virtioWin = [{{location: "{virtio_win}", arch: "{arch}"}}]')
    return [a for s in sets for a in ("--set", s)]


def iso_file(cidata: Path, joliet_path: str) -> bytes:
    import io

    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(cidata))
    try:
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, joliet_path=joliet_path)
        return buf.getvalue()
    finally:
        iso.close()


def answer_xml(cidata: Path) -> str:
    return iso_file(cidata, "/autounattend.xml").decode("utf-8")


def image_index(xml: str) -> int:
    m = re.search(r"<Key>/IMAGE/INDEX</Key>\s*<Value>(\d+)</Value>", xml)
    assert m, "autounattend.xml has no /IMAGE/INDEX"
    return int(m.group(1))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def error_lines(cp: subprocess.CompletedProcess[str]) -> list[str]:
    # Progress lines may precede the error (`Windows image: ...` once the ISO was read); nothing else.
    lines = [ln for ln in cp.stderr.splitlines() if ln.strip() and not ln.startswith("Windows image: ")]
    assert all(ln.startswith("limapy: ") for ln in lines), cp.stderr
    errs = [ln for ln in lines if not ln.startswith("limapy: hint: ")]
    assert len(errs) == 1, cp.stderr
    return errs


def no_instances(home: Path) -> None:
    left = [p.name for p in home.iterdir()] if home.exists() else []
    assert not [n for n in left if not n.startswith("_")], f"something was created: {left}"


# --------------------------------------------------------------------------- dry run + real QEMU


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("arch", "tpm"), [("x86_64", False), ("aarch64", False), ("x86_64", True)], ids=["x86_64", "aarch64", "x86_64-tpm"]
)
def test_dry_run_boots_firmware(home: Path, isos: dict[str, Path], arch: str, tpm: bool) -> None:
    for tool in (f"qemu-system-{arch}", "qemu-img", *(["swtpm"] if tpm else [])):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    vw = isos["virtio-win"] if arch == "aarch64" else None
    sets = windows_sets(arch, isos[arch], tpm=tpm, virtio_win=vw)
    cp = limapy(home, "start", "--dry-run", "--name", "windows", *sets, str(TEMPLATE))
    assert cp.returncode == 0, cp.stderr
    no_instances(home)  # a dry run of a template creates nothing
    created = limapy(home, "create", "--name", "windows", *sets, str(TEMPLATE))
    assert created.returncode == 0, created.stderr
    inst = home / "windows"
    assert not (inst / "windows-password").exists() and not (inst / "cidata.iso").exists()  # made by a start
    prep = prepare(home, "windows")
    assert prep.returncode == 0, prep.stderr
    password = (inst / "windows-password").read_text().strip()
    assert len(password) >= 16 and (inst / "windows-password").stat().st_mode & 0o777 == 0o600
    assert password not in cp.stdout + cp.stderr + prep.stdout + prep.stderr

    # The edition: Pro by reading the image list, not Lima's fixed index.
    assert f"Windows image: index {PRO[arch]} (Windows 11 Pro)" in cp.stderr
    xml = answer_xml(inst / "cidata.iso")
    assert image_index(xml) == PRO[arch] != LIMA_FIXED[arch]
    assert f'processorArchitecture="{"amd64" if arch == "x86_64" else "arm64"}"' in xml

    argv = shlex.split(prep.stdout.strip().splitlines()[-1])
    dry = shlex.split(cp.stdout.strip().splitlines()[-1])
    assert [a for a in dry if "hostfwd" not in a] == [a for a in argv if "hostfwd" not in a]  # the same plan
    assert argv[0].endswith(f"qemu-system-{arch}")
    assert f"file={inst}/iso,if=none,id=cd0,format=raw,media=cdrom,readonly=on" in argv
    assert f"file={inst}/cidata.iso,if=none,id=cd2,format=raw,media=cdrom,readonly=on" in argv
    assert "tcg,thread=multi,tb-size=512" in argv
    assert any("tpm" in a for a in argv) is tpm
    if arch == "aarch64":  # virtio-net with NetKVM from virtio-win, never usb-net (bound to usbser)
        assert not [a for a in argv if a.startswith("usb-net")]
        assert any(a.startswith("virtio-net-pci,netdev=net0") for a in argv)
        assert f"file={inst}/virtio-win,if=none,id=cd1,format=raw,media=cdrom,readonly=on" in argv
        # NetKVM from the virtio-win stand-in, on the answer ISO where Setup finds it (issue 23); the disk NVMe.
        assert "nvme,drive=boot-disk,serial=limapy0,bootindex=1" in argv
        assert iso_file(inst / "cidata.iso", "/$WinPEDriver$/NetKVM/netkvm.sys") == virtio_win_file(
            "NetKVM", "w11", "ARM64", "netkvm.sys")  # fmt: skip
    assert not re.search(r"(?<![%\w$])[D-Z]:\\", xml)  # no fixed drive letter for media

    from limapy.driver.qemu.planner import swtpm_sidecar
    from limapy.driver.sidecars import Supervisor
    from limapy.instance import store

    sidecars = Supervisor()
    if tpm:  # what the QEMU driver does before launching QEMU
        sidecars.start(swtpm_sidecar(store.Instance("windows", inst), str(shutil.which("swtpm"))))
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        serial = inst / "serial.log"
        deadline = time.monotonic() + 90
        text = b""
        while time.monotonic() < deadline and qemu.poll() is None:
            text = serial.read_bytes() if serial.exists() else b""
            if FIRMWARE_TEXT.search(text):
                break
            time.sleep(1)
        err = qemu.stderr.read().decode() if qemu.poll() is not None and qemu.stderr else ""
        assert qemu.poll() is None, f"QEMU exited {qemu.returncode}: {err}"
        assert FIRMWARE_TEXT.search(text), f"no firmware output in serial.log after 90 s: {text[-500:]!r}"

        # `limapy screenshot` by prefix during the boot: a real PNG of the firmware's screen.
        shot = home / "shot.png"
        sc = limapy(home, "screenshot", "win", "-o", str(shot))
        assert sc.returncode == 0, sc.stderr
        w, h = png_size(shot.read_bytes())
        assert w >= 320 and h >= 200
        assert password not in sc.stdout + sc.stderr
        assert password.encode() not in serial.read_bytes()
    finally:
        qemu.send_signal(signal.SIGTERM)
        try:
            qemu.wait(10)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()
        sidecars.stop_all()


# --------------------------------------------------------------------------- refusals, nothing created


def test_missing_iso(home: Path) -> None:
    missing = "/nonexistent/Win11_25H2_English_x64.iso"
    cp = limapy(home, "start", "--dry-run", "--name", "windows", *windows_sets("x86_64", missing), str(TEMPLATE))
    assert cp.returncode != 0
    (err,) = error_lines(cp)
    assert missing in err
    assert "https://www.microsoft.com/software-download/windows11" in cp.stderr
    assert "images[0].location" in cp.stderr  # how to point the template at a file
    no_instances(home)


def test_iso_of_other_arch(home: Path, isos: dict[str, Path]) -> None:
    cp = limapy(home, "create", "--name", "windows", *windows_sets("x86_64", isos["aarch64"]), str(TEMPLATE))
    assert cp.returncode != 0
    (err,) = error_lines(cp)
    assert "arm64" in err and "x86_64" in err
    no_instances(home)


def test_unknown_edition(home: Path, isos: dict[str, Path]) -> None:
    sets = windows_sets("x86_64", isos["x86_64"], extra=('.osOpts.Windows.edition = "Windows 11 Enterprise"',))
    cp = limapy(home, "create", "--name", "windows", *sets, str(TEMPLATE))
    assert cp.returncode != 0
    (err,) = error_lines(cp)
    assert "Windows 11 Enterprise" in err
    for name in X64_EDITIONS:  # the ones the ISO has are listed
        assert name in cp.stderr
    no_instances(home)


def test_tpm_without_swtpm(home: Path, isos: dict[str, Path], tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with QEMU's tools but no swtpm
    bin_dir.mkdir()
    for tool in ("qemu-img", "qemu-system-x86_64"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    cp = limapy(
        home, "start", "--dry-run", "--name", "windows", *windows_sets("x86_64", isos["x86_64"], tpm=True),
        str(TEMPLATE), path_env=str(bin_dir),
    )  # fmt: skip
    assert cp.returncode != 0
    (err,) = error_lines(cp)
    assert "swtpm" in err
    assert "tpm: false" in cp.stderr
    no_instances(home)


# --------------------------------------------------------------------------- prefixes


def test_prefixes_reach_windows(home: Path, isos: dict[str, Path]) -> None:
    for name in ("windows", "web"):
        cp = limapy(home, "create", "--name", name, *windows_sets("x86_64", isos["x86_64"]), str(TEMPLATE))
        assert cp.returncode == 0, cp.stderr
    cp = limapy(home, "shell", "win", "ver")
    assert cp.returncode != 0
    (err,) = error_lines(cp)
    assert "`windows`" in err and "stopped" in err  # resolved, then refused because it is not running
    cp = limapy(home, "shell", "w", "ver")
    assert cp.returncode != 0
    (err,) = error_lines(cp)
    assert "ambiguous" in err and "windows" in err and "web" in err
    cp = limapy(home, "screenshot", "win", "-o", str(home / "x.png"))
    assert cp.returncode != 0 and "`windows` is not running" in cp.stderr


# --------------------------------------------------------------------------- issue: Windows real behaviour


def test_aarch64_without_virtio_win_refused(home: Path, isos: dict[str, Path]) -> None:
    sets = windows_sets("aarch64", isos["aarch64"], extra=(".osOpts.Windows.virtioWin = []",))
    for command in ("create", "start"):
        cp = limapy(home, command, "--name", "windows", *sets, str(TEMPLATE))
        assert cp.returncode != 0
        assert "aarch64 Windows guest needs `osOpts.Windows.virtioWin`" in cp.stderr and "NetKVM" in cp.stderr
        assert "Traceback" not in cp.stderr
        no_instances(home)


def test_windows_2025_dry_run_picks_standard_desktop(home: Path, isos: dict[str, Path]) -> None:
    cp = limapy(home, "validate", "template:windows-2025")
    assert cp.returncode == 0 and "template:windows-2025: OK" in cp.stdout, cp.stderr
    sets = [
        f'.images[0].location = "{isos["server-eval"]}"', "del(.images[0].digest)",
        f'.osOpts.Windows.virtioWin = [{{location: "{isos["virtio-win"]}", arch: "x86_64"}}]',
        '.video.display = "none"', '.osOpts.Windows.opensshSource = "capability"',
    ]  # fmt: skip
    cp = limapy(home, "create", "--name", "server", *[a for x in sets for a in ("--set", x)], "template:windows-2025")
    assert cp.returncode == 0, cp.stderr
    prep = prepare(home, "server")
    assert prep.returncode == 0, prep.stderr
    want = SERVER_EVAL_EDITIONS.index("Windows Server 2025 Standard Evaluation (Desktop Experience)") + 1
    assert want != 1  # Lima's fixed index would install Core
    assert f"Windows image: index {want}" in cp.stderr
    xml = answer_xml(home / "server" / "cidata.iso")
    assert image_index(xml) == want
    assert "<Key>" not in xml.split("<ProductKey>")[1].split("</ProductKey>")[0]  # keyless: evaluation media
    # viostor and NetKVM for Server 2025 (2k25) under $WinPEDriver$; the hardware-check bypasses always.
    for driver in ("viostor", "NetKVM"):
        name = f"{driver.lower()}.inf"
        got = iso_file(home / "server" / "cidata.iso", f"/$WinPEDriver$/{driver}/{name}")
        assert got == virtio_win_file(driver, "2k25", "amd64", name)
    assert "BypassTPMCheck" in xml
    # The built-in Administrator's password: random, 0600, in the answer file and in no output.
    admin = home / "server" / "windows-admin-password"
    secret = admin.read_text().strip()
    assert len(secret) >= 16 and admin.stat().st_mode & 0o777 == 0o600
    assert f"<AdministratorPassword>\n          <Value>{secret}</Value>" in xml
    assert secret not in cp.stdout + cp.stderr + prep.stdout + prep.stderr


def test_server_media_needs_a_key_unless_evaluation(home: Path, isos: dict[str, Path]) -> None:
    sets = windows_sets("x86_64", isos["server-retail"])
    cp = limapy(home, "create", "--name", "srv", *sets, str(TEMPLATE))
    assert cp.returncode != 0
    (err,) = error_lines(cp)
    assert "not an evaluation edition" in err and "productKey" in cp.stderr
    no_instances(home)
    key = "ABCDE-12345-FGHIJ-67890-KLMNO"
    cp = limapy(home, "create", "--name", "srv", *sets, "--set", f'.osOpts.Windows.productKey = "{key}"', str(TEMPLATE))
    assert cp.returncode == 0, cp.stderr
    inst = home / "srv"
    assert key not in (inst / "lima.yaml").read_text()  # kept apart, 0600
    stored = inst / "windows-product-key"
    assert stored.read_text().strip() == key and stored.stat().st_mode & 0o777 == 0o600
    cp2 = prepare(home, "srv")
    assert cp2.returncode == 0, cp2.stderr
    assert f"<Key>{key}</Key>" in answer_xml(inst / "cidata.iso")
    for text in (cp.stdout, cp.stderr, cp2.stdout, cp2.stderr, limapy(home, "list", "--json").stdout):
        assert key not in text


def test_server_on_aarch64_refused(home: Path, isos: dict[str, Path], tmp_path: Path) -> None:
    iso = build_standin_iso(tmp_path / "Server_arm64.iso", arch="aarch64", server=True, editions=SERVER_EVAL_EDITIONS)
    cp = limapy(home, "create", "--name", "srv", *windows_sets("aarch64", iso, virtio_win=isos["virtio-win"]),
                str(TEMPLATE))
    assert cp.returncode != 0
    (err,) = error_lines(cp)
    assert "Windows Server" in err and "aarch64" in err and "2k25\\ARM64" in err
    no_instances(home)


@pytest.mark.skipif(shutil.which("msibuild") is None, reason="msibuild (msitools) not installed")
def test_openssh_msi_per_arch(home: Path, isos: dict[str, Path], tmp_path: Path) -> None:
    """osOpts.Windows.opensshMsi is a per-arch list; the MSI's own platform (Summary Information Template,
    written here by msitools as Windows Installer reads it) must match the instance arch."""
    import hashlib

    msis = {}
    for arch, platform in (("x86_64", "x64;1033"), ("aarch64", "Arm64;1033")):
        msi = tmp_path / f"OpenSSH-{arch}.msi"
        subprocess.run(["msibuild", str(msi), "-s", "OpenSSH", "Microsoft", platform, "{8A62E7C8-9F4B-4E1C-A3D2-"
                        f"{'1' if arch == 'x86_64' else '2'}B7C4D5E6F70}}"], check=True)
        msis[arch] = (msi, "sha256:" + hashlib.sha256(msi.read_bytes()).hexdigest())

    def entry(arch: str, path_arch: str) -> str:
        path, digest = msis[path_arch]
        return f'{{location: "{path}", arch: "{arch}", digest: "{digest}"}}'

    # The x64 MSI listed for aarch64: refused by its platform, nothing created.
    bad = f".osOpts.Windows.opensshMsi = [{entry('aarch64', 'x86_64')}]"
    cp = limapy(home, "create", "--name", "w", *windows_sets("aarch64", isos["aarch64"], virtio_win=isos["virtio-win"],
                extra=(bad,), openssh="msi"), str(TEMPLATE))
    assert cp.returncode != 0 and "installs for x64, but the instance arch is aarch64" in cp.stderr, cp.stderr
    no_instances(home)
    # No entry for this arch: refused, naming what there is.
    only_arm = f".osOpts.Windows.opensshMsi = [{entry('aarch64', 'aarch64')}]"
    sets = windows_sets("x86_64", isos["x86_64"], extra=(only_arm,), openssh="msi")
    cp = limapy(home, "create", "--name", "w", *sets, str(TEMPLATE))
    assert cp.returncode != 0 and "no entry for arch x86_64 (it has: aarch64)" in cp.stderr, cp.stderr
    no_instances(home)
    # Both listed: each instance carries its own arch's MSI on the answer ISO.
    both = f".osOpts.Windows.opensshMsi = [{entry('x86_64', 'x86_64')}, {entry('aarch64', 'aarch64')}]"
    for arch in ("x86_64", "aarch64"):
        vw = isos["virtio-win"] if arch == "aarch64" else None
        cp = limapy(home, "create", "--name", f"w-{arch}", *windows_sets(arch, isos[arch], virtio_win=vw,
                    extra=(both,), openssh="msi"), str(TEMPLATE))
        assert cp.returncode == 0, cp.stderr
        assert prepare(home, f"w-{arch}").returncode == 0
        inst = home / f"w-{arch}"
        assert (inst / "openssh-msi").resolve().read_bytes() == msis[arch][0].read_bytes()
        import pycdlib

        iso = pycdlib.PyCdlib()
        iso.open(str(inst / "cidata.iso"))
        try:
            import io

            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, joliet_path="/OpenSSH.msi")
        finally:
            iso.close()
        assert buf.getvalue() == msis[arch][0].read_bytes()


# --------------------------------------------------------------------------- issue 23: any install language


def test_a_german_iso_is_answered_in_german(home: Path, tmp_path: Path) -> None:
    """The language fields come from the image's own default language (install.wim's image list): a de-DE ISO
    gets de-DE everywhere and the German keyboard (Microsoft's default input profile 0407:00000407)."""
    iso = build_standin_iso(tmp_path / "Win11_25H2_German_x64.iso", arch="x86_64", languages=("de-DE",))
    cp = limapy(home, "create", "--name", "w", *windows_sets("x86_64", iso), str(TEMPLATE))
    assert cp.returncode == 0, cp.stderr
    assert "language de-DE" in cp.stderr
    assert prepare(home, "w").returncode == 0
    xml = answer_xml(home / "w" / "cidata.iso")
    for field in ("UILanguage", "SystemLocale", "UserLocale"):
        values = re.findall(rf"<{field}>([^<]*)</{field}>", xml)
        assert values and set(values) == {"de-DE"}, (field, values)  # windowsPE (and SetupUILanguage), specialize, oobe
    assert set(re.findall(r"<InputLocale>([^<]*)</InputLocale>", xml)) == {"0407:00000407"}
    # osOpts.Windows.locale: a Swiss keyboard and formats on the German image (the display stays German).
    cp = limapy(home, "create", "--name", "ch", *windows_sets(
        "x86_64", iso, extra=('.osOpts.Windows.locale = "de-CH"',)), str(TEMPLATE))  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert prepare(home, "ch").returncode == 0
    xml = answer_xml(home / "ch" / "cidata.iso")
    assert set(re.findall(r"<UILanguage>([^<]*)</UILanguage>", xml)) == {"de-DE"}
    assert set(re.findall(r"<UserLocale>([^<]*)</UserLocale>", xml)) == {"de-CH"}
    assert set(re.findall(r"<InputLocale>([^<]*)</InputLocale>", xml)) == {"0807:00000807"}


def test_an_image_without_a_language_is_refused_before_anything_is_created(home: Path, tmp_path: Path) -> None:
    iso = build_standin_iso(tmp_path / "custom.iso", arch="x86_64", languages=(), label="MY_OWN_X64FRE_DISC")
    cp = limapy(home, "create", "--name", "w", *windows_sets("x86_64", iso), str(TEMPLATE))
    assert cp.returncode != 0
    (err,) = error_lines(cp)
    assert "names no language" in err and "osOpts.Windows.locale" in cp.stderr
    no_instances(home)
