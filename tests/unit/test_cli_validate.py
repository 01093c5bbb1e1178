"""`limapy validate` in-process (limapy.cli.main): output lines and exit codes; no subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from limapy import __version__
from limapy.cli import main
from limapy.config.load import load_bytes

REPO = Path(__file__).resolve().parents[2]
GOOD = "images: [{location: /tmp/x.img, arch: x86_64}, {location: /tmp/y.img, arch: aarch64}]\ncpus: 2\n"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMAPY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIMAPY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIMAPY_TEMPLATES_PATH", raising=False)
    monkeypatch.delenv("LIMAPY_DEBUG", raising=False)


def test_good_file_prints_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "good.yaml"
    f.write_text(GOOD)
    assert main(["validate", str(f)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{f}: OK\n"
    assert err == ""


def test_shipped_templates_ok(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(REPO / "templates" / "default.yaml"), "template:experimental/windows"]
    assert main(["validate", *files]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{f}: OK" for f in files]


def test_bad_file_exit_3_one_line_per_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("os: windows\ncpus: 2\n")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["validate", str(f), str(good)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{good}: OK\n"
    assert err.splitlines() == [
        f"limapy: {f}:1:1: field `os` must be one of [`Linux` `Darwin` `FreeBSD` `Windows`]; got `windows`",
        f"limapy: {f}:1:1: field `images` must be set",
    ]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [(b"images: [\n", ":2:1: YAML:"), (b"\xff\n", "UTF-8"), (b"- a\n", "is a list"), (b"a: 1\na: 2\n", "duplicate")],
)
def test_unreadable_files_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: bytes, needle: str) -> None:
    f = tmp_path / "x.yaml"
    f.write_bytes(raw)
    assert main(["validate", str(f)]) == 1
    err = capsys.readouterr().err
    assert needle in err and err.startswith(f"limapy: {f}") and "Traceback" not in err


def test_missing_file_and_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml"), str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"limapy: {tmp_path / 'nope.yaml'}: no such file",
        f"limapy: {tmp_path}: is a directory, not a lima.yaml file",
    ]


def test_unknown_key_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "typo.yaml"
    f.write_text(GOOD + "cpu: 3\n")
    assert main(["validate", str(f)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{f}: OK\n"
    assert err.startswith(f"{f}:3:1: warning: field `cpu`")


def test_fill_prints_yaml_that_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from limapy.config import check

    f = tmp_path / "good.yaml"
    f.write_text(GOOD + "mounts: [{location: /srv}]\nportForwards: [{guestPort: 80, hostPort: 8080}]\n")
    assert main(["validate", "--fill", str(f)]) == 0
    filled = capsys.readouterr().out
    assert "OK" not in filled
    loaded = check(load_bytes(filled.encode(), "filled.yaml"))
    assert loaded.cfg["cpus"] == 2
    assert loaded.cfg["portForwards"][0]["hostPortRange"] == [8080, 8080]
    assert loaded.cfg["mounts"][0]["9p"]["cache"] == "fscache"


def test_fill_of_windows_template_validates(capsys: pytest.CaptureFixture[str]) -> None:
    from limapy.config import check

    assert main(["validate", "--fill", "template:windows"]) == 0
    loaded = check(load_bytes(capsys.readouterr().out.encode(), "filled.yaml"))
    assert loaded.cfg["os"] == "Windows"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_help_lists_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "validate" in capsys.readouterr().out


def test_validate_without_files_is_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 1
