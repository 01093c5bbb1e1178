"""--set expressions: the supported yq subset works, everything else is refused loudly."""

from __future__ import annotations

import pytest

from limapy.base.errors import UsageError
from limapy.expr.edits import apply, shortcut_sets


def test_assign_nested_and_indexed() -> None:
    d: dict = {"images": [{"location": "a"}]}
    apply(d, '.cpus = 2 | .images[0].location = "/x/y.iso" | .video.display = "none"')
    assert d == {"images": [{"location": "/x/y.iso"}], "cpus": 2, "video": {"display": "none"}}


def test_append_and_delete() -> None:
    d: dict = {"mounts": [{"location": "/a"}], "nothing": 1}
    apply(d, ".mounts += [{location: /tmp}] | del(.nothing) | del(.absent.deeper)")
    assert d == {"mounts": [{"location": "/a"}, {"location": "/tmp"}]}


def test_append_creates_list() -> None:
    d: dict = {}
    apply(d, '.provision += [{mode: system, script: "#!/bin/sh\\ntrue"}]')
    assert d["provision"][0]["mode"] == "system"


def test_pipe_inside_quotes_is_not_a_separator() -> None:
    d: dict = {}
    apply(d, '.message = "a | b"')
    assert d == {"message": "a | b"}


@pytest.mark.parametrize(
    "expr",
    [".cpus |= 2", "select(.x)", "cpus = 2", ".a = [unclosed", ".images[0].x += 1 | .a b = 1"],
)
def test_unsupported_is_an_error(expr: str) -> None:
    with pytest.raises(UsageError):
        apply({"images": [{"x": [1]}]}, expr)


def test_shortcuts_match_lima() -> None:
    assert [e.expr for e in shortcut_sets(4, 8, 100.5)] == [".cpus = 4", '.memory = "8GiB"', '.disk = "100.5GiB"']
    assert [e.origin for e in shortcut_sets(4, 8, 100.5)] == ["--cpus 4", "--memory 8", "--disk 100.5"]
    assert shortcut_sets(None, None, None) == []


def test_prepend_to_a_list() -> None:
    d: dict = {"mounts": [{"location": "~"}]}
    apply(d, '.mounts = [{"location": "/a+b"}] + .mounts')
    assert d["mounts"] == [{"location": "/a+b"}, {"location": "~"}]
    e: dict = {}
    apply(e, ".mounts = [{location: /x}] + .mounts")
    assert e == {"mounts": [{"location": "/x"}]}
    with pytest.raises(UsageError, match="only a list"):
        apply(e, ".mounts = 3 + .mounts")


def test_every_entry_of_a_list() -> None:
    d: dict = {"mounts": [{"location": "/a"}, {"location": "/b", "writable": False}]}
    apply(d, ".mounts[].writable = true")
    assert [m["writable"] for m in d["mounts"]] == [True, True]
    empty: dict = {}
    apply(empty, ".mounts[].writable = true")  # no list: nothing to change, nothing made
    assert empty == {}
    with pytest.raises(UsageError, match="only one"):
        apply({"a": [{"b": [{}]}]}, ".a[].b[].c = 1")


def test_target_exists() -> None:
    from limapy.expr.edits import target_exists

    d = {"param": {"A": "1"}, "images": [{"location": "x"}]}
    assert target_exists(d, '.param["A"] = "2"')
    assert not target_exists(d, '.param["B"] = "2"')
    assert target_exists(d, '.images[0].location = "y"') and not target_exists(d, '.images[1].location = "y"')
