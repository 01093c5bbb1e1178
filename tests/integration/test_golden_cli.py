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
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.golden import compare
from tests.goldencases import CASES, NAME, cli, media_dir, normalize


@pytest.fixture(scope="module")
def media() -> Iterator[Path]:
    with media_dir() as d:
        yield d


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
    from limapy.base.dirs import shipped_templates_dir

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
