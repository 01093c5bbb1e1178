"""`limapy edit --set .osOpts.Windows.productKey=...`: the key goes to windows-product-key (0600) in the instance
directory, as at create; it is in neither lima.yaml nor anything the command prints."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from limapy.cli import main
from limapy.instance import store

KEY = "ABCDE-12345-FGHIJ-67890-KLMNO"


def test_edit_keeps_the_product_key_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    inst = store.create_instance_dir("srv", {"lima.yaml": b"os: Windows\narch: x86_64\nimages: [{location: /x.iso}]\n"})
    assert main(["edit", "srv", "--cpus", "3", "--set", f'.osOpts.Windows.productKey = "{KEY}"']) == 0
    assert main(["list", "--json", "srv"]) == 0
    assert main(["info", "srv"]) == 0
    text = inst.lima_yaml.read_text()
    assert "cpus: 3" in text and KEY not in text and "productKey" not in text
    said = capsys.readouterr()
    assert '"cpus":3' in said.out  # the edit itself went through
    assert KEY not in said.out + said.err
    assert inst.product_key_file == inst.dir / "windows-product-key"
    assert inst.product_key_file.read_text() == KEY + "\n"
    assert stat.S_IMODE(inst.product_key_file.stat().st_mode) == 0o600
