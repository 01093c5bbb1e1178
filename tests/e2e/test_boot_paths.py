"""The ways users' guests boot (issue 14): a GPT disk through UEFI firmware and GRUB (x86_64, OVMF), the same
disk through SeaBIOS (`firmware.legacyBIOS: true`), and an arm64 guest through AAVMF on `virt` under TCG.

UEFI x86_64 and aarch64 each run the lifecycle essentials on one instance: start -> ready -> shell exit codes
-> provisioning -> stop -> start keeps data; on aarch64 a UEFI variable written in the guest (efibootmgr)
is still in the instance's 64 MiB vars store after the restart. The BIOS image starts and shells.
Images: hack/build-test-image.sh --boot uefi / --boot bios / --arch aarch64 (cached).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import RunLimapy, build_test_image
from tests.e2e.guest import START_TIMEOUT, leftovers, list_json, qemu_pids, template_with

#: Boots on 2 cores shared with other guests: be generous (limapy start's own limit too).
X86_START_TIMEOUT = 2 * START_TIMEOUT
#: aarch64 is emulated instruction by instruction: boots take several times longer than x86_64 under TCG.
AARCH64_START_TIMEOUT = 1800
PARTITION_OF_ROOT = 'cat "/sys/class/block/$(basename "$(findmnt -no SOURCE /)")/partition"'
PROVISION = """\
provision:
- mode: system
  script: |
    #!/bin/sh
    id -un >/var/tmp/prov-system
- mode: user
  script: |
    #!/bin/sh
    id -un >/var/tmp/prov-user
"""


@pytest.fixture(autouse=True)
def _show_logs_on_failure(limapy_home: Path) -> None:
    """Every test here shows its instance's serial and host-agent logs when it fails."""


def sh(run: RunLimapy, name: str, script: str, timeout: float = 300) -> str:
    cp = run("shell", name, "--", "sh", "-c", script, timeout=timeout)
    assert cp.returncode == 0, f"{script!r}: exit {cp.returncode}: {cp.stderr}"
    return cp.stdout


def essentials(run: RunLimapy, home: Path, name: str, template: Path, timeout: float, before_stop: str = "") -> None:
    """start -> ready -> exit codes -> provisioning -> data written -> stop -> start -> data kept."""
    cp = run("start", "--name", name, "--timeout", f"{timeout:.0f}s", template, timeout=timeout + 60)
    assert cp.returncode == 0, cp.stderr
    assert "READY" in cp.stderr, cp.stderr
    assert list_json(run)[name]["status"] == "Running"
    cp = run("shell", name, "--", "sh", "-c", "exit 7", timeout=300)
    assert cp.returncode == 7, cp.stderr
    assert sh(run, name, "cat /var/tmp/prov-system /var/tmp/prov-user").split() == ["root", "lima"]
    # booted through firmware and a boot loader from the partitioned disk (no -kernel): the root is a partition
    out = sh(run, name, "test -d /sys/firmware/efi && echo efi; " + PARTITION_OF_ROOT)
    assert out.split() == ["efi", "3"], out
    sh(run, name, "echo kept >~/keep; sync")
    if before_stop:
        sh(run, name, before_stop)
    cp = run("stop", name, timeout=600)
    assert cp.returncode == 0, cp.stderr
    assert qemu_pids(home / name) == []
    cp = run("start", name, "--timeout", f"{timeout:.0f}s", timeout=timeout + 60)
    assert cp.returncode == 0, cp.stderr
    assert sh(run, name, "cat ~/keep").strip() == "kept"


@pytest.mark.timeout(2 * X86_START_TIMEOUT + 600)
def test_uefi_x86_64(limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path) -> None:
    tmpl = template_with(
        build_test_image("--boot", "uefi", env="LIMAPY_TEST_IMAGE_TEMPLATE_UEFI"), tmp_path / "uefi.yaml", PROVISION
    )
    essentials(run_limapy, limapy_home, "u", tmpl, X86_START_TIMEOUT)
    assert (limapy_home / "u" / "qemu-efi-vars.fd").stat().st_size == 540672  # OVMF's 4 MB layout
    cp = run_limapy("delete", "-f", "u")
    assert cp.returncode == 0, cp.stderr
    assert leftovers(limapy_home) == []


@pytest.mark.timeout(X86_START_TIMEOUT + 300)
def test_bios_x86_64(limapy_home: Path, run_limapy: RunLimapy) -> None:
    tmpl = build_test_image("--boot", "bios", env="LIMAPY_TEST_IMAGE_TEMPLATE_BIOS")
    cp = run_limapy("start", "--name", "b", "--timeout", f"{X86_START_TIMEOUT}s", tmpl, timeout=X86_START_TIMEOUT + 60)
    assert cp.returncode == 0, cp.stderr
    assert not (limapy_home / "b" / "qemu-efi-vars.fd").exists()
    out = sh(run_limapy, "b", "test -d /sys/firmware/efi && echo efi || echo bios; uname -m")
    assert out.split() == ["bios", "x86_64"], out
    cp = run_limapy("shell", "b", "--", "false", timeout=300)
    assert cp.returncode == 1
    cp = run_limapy("delete", "-f", "b")
    assert cp.returncode == 0, cp.stderr


@pytest.mark.timeout(3 * AARCH64_START_TIMEOUT)
def test_aarch64(limapy_home: Path, run_limapy: RunLimapy, tmp_path: Path) -> None:
    if os.environ.get("LIMAPY_TEST_AARCH64") == "0":
        pytest.skip("LIMAPY_TEST_AARCH64=0 leaves out the aarch64 boot (its image builds in about 4 minutes "
                    "under qemu-user, the test takes 4-6 more)")
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 missing (apt-get install qemu-system-arm)")
    tmpl = template_with(
        build_test_image("--arch", "aarch64", needs=("qemu-system-aarch64",), env="LIMAPY_TEST_IMAGE_TEMPLATE_AARCH64"),
        tmp_path / "a.yaml",
        PROVISION,
    )
    name = "a"
    # A UEFI variable written from the guest (a boot entry; BootOrder changes with it) ...
    essentials(
        run_limapy,
        limapy_home,
        name,
        tmpl,
        AARCH64_START_TIMEOUT,
        before_stop=(
            # the disk of the root file system (findfs is not in bookworm's util-linux any more)
            'd=/dev/$(lsblk -no PKNAME "$(findmnt -no SOURCE /)"); sudo efibootmgr -q --create --disk "$d" --part 2 '
            "--label limapy-e2e --loader '\\EFI\\BOOT\\BOOTAA64.EFI' && sudo efibootmgr | grep -q limapy-e2e"
        ),
    )
    vars_store = limapy_home / name / "qemu-efi-vars.fd"
    assert vars_store.stat().st_size == 64 << 20  # the per-instance 64 MiB store Windows on arm64 uses too
    assert "limapy-e2e".encode("utf-16-le") in vars_store.read_bytes()
    # ... is there after the restart (essentials' second start), read by the firmware from that store
    assert sh(run_limapy, name, "uname -m; sudo efibootmgr | grep -c limapy-e2e").split() == ["aarch64", "1"]
    cp = run_limapy("delete", "-f", name)
    assert cp.returncode == 0, cp.stderr
