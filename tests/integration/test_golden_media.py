"""What limapy generates for a guest, pinned for every shipped template and layout (tests/goldencases.py): the
first-boot media (the NoCloud seed or the Windows answer ISO: every file on it, Rock Ridge modes and the volume
label), the QEMU argv of every boot of a Windows install (first boot, Setup under way, installed; the first boot of
every case is tests/golden/cli/), and the libvirt domain XML of each of those boots, through the libvirt driver's
own plan (against a stand-in libvirt connection: no libvirtd is asked). Compared with tests/golden/media/<case>/
through tests/golden.py; LIMAPY_REGEN_GOLDEN=1 rewrites them.

These files were written before the guest-OS seam (issue 25) moved the code that makes them, and must stay
byte-identical through any refactor that is not meant to change a guest.

What depends on the run is normalized as in tests/golden/cli/, and more: the guest user is set (name, uid,
comment), limapy's SSH key, the Windows passwords, the instance-id and the host's name (in the domain's
metadata) are replaced by names.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.golden import compare
from tests.goldencases import CASES, NAME, cli, media_dir, normalize, replace_paths

#: The guest user and time zone, the same on every host (the defaults are the host's).
USER_SETS = ['.user.name = "lima"', ".user.uid = 1000", '.user.comment = "limapy golden"', '.timezone = "Etc/UTC"']
POOL = "/var/lib/libvirt/images/limapy"


@pytest.fixture(scope="module")
def media() -> Iterator[Path]:
    with media_dir() as d:
        yield d


# -- a stand-in libvirt connection: what the libvirt driver's plan asks, answered for a local qemu:///system ------


def _lv() -> Any:
    try:
        import libvirt  # type: ignore[import-untyped]
    except ImportError:
        pytest.skip("the libvirt Python binding is not installed")
    return libvirt


class _Pool:
    def XMLDesc(self, _flags: int) -> str:
        return f"<pool type='dir'><name>limapy</name><target><path>{POOL}</path></target></pool>"

    def storageVolLookupByName(self, name: str) -> Any:
        raise _lv().libvirtError(f"no volume {name}")


class _Conn:
    def storagePoolLookupByName(self, _name: str) -> _Pool:
        return _Pool()

    def lookupByName(self, name: str) -> Any:
        lv = _lv()

        class NoDomain(lv.libvirtError):  # type: ignore[misc, name-defined]
            def get_error_code(self) -> int:
                return int(lv.VIR_ERR_NO_DOMAIN)

        raise NoDomain(f"no domain {name}")

    def getURI(self) -> str:
        return "qemu:///system"

    def close(self) -> int:
        return 0


# -- reading the first-boot media -----------------------------------------------------------------------------


def _iso_listing(path: Path, norm: Callable[[str], str]) -> str:
    """Every file of the ISO (Rock Ridge names and modes when it has them, else Joliet), text normalized (its size
    too, so that a longer $HOME changes nothing) and binary files as size and digest, and the volume label."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        rr = iso.has_rock_ridge()
        facade = iso.get_rock_ridge_facade() if rr else iso.get_joliet_facade()
        label = iso.pvd.volume_identifier.decode().strip()
        out = [f"# volume label: {label}", f"# names: {'rock ridge' if rr else 'joliet'}"]
        files: list[tuple[str, int | None]] = []
        for root, _dirs, names in facade.walk("/"):
            for n in names:
                full = f"{root.rstrip('/')}/{n}"
                mode = facade.get_record(full).rock_ridge.get_file_mode() if rr else None
                files.append((full, mode))
        for full, mode in sorted(files):
            buf = io.BytesIO()
            if rr:
                iso.get_file_from_iso_fp(buf, rr_path=full)
            else:
                iso.get_file_from_iso_fp(buf, joliet_path=full)
            data = buf.getvalue()
            head = f"=== {full}" + (f" mode={mode & 0o7777:o}" if mode is not None else "")
            try:
                text = data.decode("utf-8")
                binary = "\0" in text
            except UnicodeDecodeError:
                binary = True
            if binary:
                out.append(f"{head} binary {len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()}")
            else:
                text = norm(text)
                size = len(text.encode())
                out += [f"{head} text {size} bytes", text if text.endswith("\n") else text + "\n<no newline>"]
        return norm("\n".join(out) + "\n")
    finally:
        iso.close()


class Norm:
    """What depends on the run, replaced by names."""

    def __init__(self, home: Path, media: Path, inst: Any) -> None:
        from limapy.base import dirs

        self.pairs: list[tuple[str, str]] = []
        for path, name in ((inst.password_file, "$WINDOWS_PASSWORD"), (inst.admin_password_file, "$ADMIN_PASSWORD")):
            if path.exists():
                self.pairs.append((path.read_text().strip(), name))
        pub = dirs.config_dir() / "user.pub"
        if pub.exists():
            self.pairs.append((pub.read_text().strip(), "$LIMAPY_PUBKEY"))
        self.paths: list[tuple[Path | str, str]] = [(home, "$LIMAPY_HOME"), (media, "$MEDIA"), (Path.home(), "$HOME")]

    def text(self, s: str) -> str:
        for value, name in self.pairs:
            if value:
                s = s.replace(value, name)
        s = replace_paths(s, self.paths)
        s = re.sub(r"\biid-\d+\b", "iid-$TIME", s)
        s = re.sub(r"52:55:55(:[0-9a-f]{2}){3}", "$MAC", s)
        return re.sub(r"lima-[0-9a-f]{16}\b", "$MOUNT_TAG", s)  # hashes the host's paths


def _domain_xml(inst: Any, spec: Any, norm: Norm, monkeypatch: pytest.MonkeyPatch) -> str:
    from limapy import driver
    from limapy.driver.libvirt import conn as lvconn

    _lv()
    monkeypatch.setattr(lvconn, "connect", lambda _uri: _Conn())
    inst.driver_file.write_text("libvirt\n")
    (inst.dir / "driver.uri").write_text("qemu:///system\n")
    try:
        drv = driver.for_instance(inst)
        plan = drv.plan(inst, drv.adapt(spec))
    finally:
        inst.driver_file.unlink()
        (inst.dir / "driver.uri").unlink()
    # the machine limapy runs on, in limapy's metadata
    xml = norm.text(plan.document).replace(f'host="{os.uname().nodename}"', 'host="$HOSTNAME"')
    from limapy.config import hostinfo
    from limapy.config.defaults import fill
    from limapy.config.model import Spec

    host = Spec.from_cfg(fill({}, host=hostinfo.detect(), name=NAME, instance_dir=None))
    xml = xml.replace(f'<memory unit="MiB">{host.memory >> 20}</memory>', '<memory unit="MiB">$MEMORY_MIB</memory>')
    if spec.cpus == host.cpus:
        xml = xml.replace(f'<vcpu placement="static">{spec.cpus}</vcpu>', '<vcpu placement="static">$CPUS</vcpu>')
        xml = xml.replace(f'cores="{spec.cpus}"', 'cores="$CPUS"')
    return xml


def _qemu_argv(inst: Any, spec: Any, home: Path, media: Path) -> str:
    from limapy import driver

    drv = driver.for_instance(inst)
    plan = drv.plan(inst, spec)
    return "\n".join(normalize(list(plan.argv), home, media)) + "\n"


def _mark_setup(inst: Any) -> None:
    """The disk as Windows Setup leaves it once it has partitioned it (a GPT header in sector 1)."""
    raw = inst.dir / "head.raw"
    with open(raw, "wb") as f:
        f.truncate(1 << 20)
        f.seek(512)
        f.write(b"EFI PART")
    inst.disk.unlink()
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(inst.disk)], check=True)
    raw.unlink()


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_files(
    case: str, media: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if "virtiofs" in case and os.getuid() != 0 and shutil.which("virtiofsd") is None:
        pytest.skip("QEMU's own virtiofsd runs as root only, and the standalone virtiofsd is not installed")
    home = Path(tempfile.mkdtemp(prefix="lpm-", dir="/tmp"))
    try:
        monkeypatch.setenv("LIMAPY_HOME", str(home))
        monkeypatch.setenv("LIMAPY_CACHE_DIR", str(home / "_cache"))
        monkeypatch.setenv("LIMAPY_QEMU_ACCEL", "tcg")
        monkeypatch.delenv("LIMAPY_DRIVER", raising=False)
        template, sets = CASES[case]
        flags = [a for s in [*sets, *USER_SETS] for a in ("--set", s.replace("$MEDIA", str(media)))]
        rc, _, err = cli(capsys, "create", "--name", NAME, *flags, template)
        assert rc == 0, err

        from limapy import config, driver
        from limapy.instance import store

        inst = store.resolve(NAME)
        spec = config.instance_spec(inst)
        drv = driver.for_instance(inst)
        plan = drv.plan(inst, spec)
        drv.materialize(inst, spec, plan)  # writes the first-boot media, as a start does
        norm = Norm(home, media, inst)
        compare(f"media/{case}/media.txt", _iso_listing(inst.cidata_iso, norm.text))
        compare(f"media/{case}/domain.xml", _domain_xml(inst, spec, norm, monkeypatch))
        if spec.os.value != "Windows":
            return
        # the later boots of an install: Setup has written the disk (media attached, the disk first), installed
        _mark_setup(inst)
        compare(f"media/{case}/setup.argv", _qemu_argv(inst, spec, home, media))
        compare(f"media/{case}/setup-domain.xml", _domain_xml(inst, spec, norm, monkeypatch))
        inst.win_done_installation.write_bytes(b"")
        compare(f"media/{case}/installed.argv", _qemu_argv(inst, spec, home, media))
        compare(f"media/{case}/installed-domain.xml", _domain_xml(inst, spec, norm, monkeypatch))
    finally:
        shutil.rmtree(home, ignore_errors=True)
