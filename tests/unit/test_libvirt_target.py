"""The libvirt driver's URI reading (limapy.driver.libvirt.target) and its screenshot converter
(limapy.driver.libvirt.volumes.to_png); the domain XML is tests/unit/test_libvirt_domain.py."""

from __future__ import annotations

import shlex
import shutil
import struct
import subprocess
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from limapy.base.errors import LimapyError
from limapy.driver.libvirt import target
from limapy.driver.libvirt.target import Jump
from limapy.driver.libvirt.volumes import to_png

# -- target.parse ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    ["qemu:///system", "qemu:///session", "qemu://localhost/system", "qemu://127.0.0.1/session",
     "qemu://[::1]/system", "qemu+unix:///system", "qemu+unix:///session?socket=/run/libvirt/virtqemud-sock"],
)  # fmt: skip
def test_local_uris(uri: str) -> None:
    assert target.parse(uri) is None


@pytest.mark.parametrize(
    ("uri", "jump"),
    [
        ("qemu+ssh://kvm.example/system", Jump("kvm.example")),
        ("qemu+ssh://alice@kvm.example:2222/system?keyfile=/home/alice/.ssh/id_ed25519&no_verify=1",
         Jump("kvm.example", "alice", 2222, "/home/alice/.ssh/id_ed25519", True)),
        ("qemu+ssh://bob@10.0.0.5/system?no_verify=0", Jump("10.0.0.5", "bob")),
        ("qemu+libssh2://bob@kvm.example/session?keyfile=%2Fk%20dir%2Fid%27s", Jump("kvm.example", "bob",
                                                                                     keyfile="/k dir/id's")),
        ("qemu+libssh://kvm.example:22/system", Jump("kvm.example", port=22)),
        ("qemu+ssh://u@[fd00::1]:2200/system", Jump("fd00::1", "u", 2200)),
    ],
)  # fmt: skip
def test_remote_ssh_uris(uri: str, jump: Jump) -> None:
    assert target.parse(uri) == jump


def test_proxy_jump_and_when_a_command_is_needed() -> None:
    assert (Jump("h").proxy_jump, Jump("h").needs_command) == ("h", False)
    assert Jump("h", "u", 2222).proxy_jump == "u@h:2222"
    assert Jump("h", keyfile="/k").needs_command and Jump("h", no_verify=True).needs_command
    v6 = Jump("fd00::1", "u", 2200)
    assert v6.proxy_jump == "u@[fd00::1]:2200" and v6.needs_command  # ProxyJump needs brackets for IPv6


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client")
@pytest.mark.parametrize("jump", [Jump("h", "u", 2222), Jump("fd00::1", "u", 2200), Jump("fd00::1")])
def test_openssh_reads_the_proxy_jump(jump: Jump) -> None:
    cp = subprocess.run(["ssh", "-F", "/dev/null", "-G", "-o", f"ProxyJump={jump.proxy_jump}", "guest"],
                        capture_output=True, text=True, timeout=10)  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert f"proxyjump {jump.proxy_jump}" in cp.stdout.splitlines()


@pytest.mark.parametrize(
    "uri",
    [
        "", "/var/run/libvirt/libvirt-sock", "xen:///system", "test:///default", "vbox:///session",
        "qemu+tcp://kvm.example/system", "qemu+tls://kvm.example/system", "qemu://kvm.example/system",
        "qemu+ext://kvm.example/system?command=/bin/x", "qemu+unix://kvm.example/system",
        "qemu+ssh://kvm.example:99999/system", "qemu+ssh://kvm.example:port/system",
        "qemu+ssh://-oProxyCommand=touch%20x/system", "qemu+ssh://-oProxyCommand=x@kvm.example/system",
        "qemu+ssh://a%20b@kvm.example/system", "qemu+ssh://a'b@kvm.example/system",
        "qemu+ssh://kvm.example/system?keyfile=/k%0APermitLocalCommand%20yes",
        "qemu+ssh://kvm.example/system?keyfile=/k%25h", "qemu+ssh://kvm.example/sys\ntem",
        "qemu+ssh://[fe80::1%25eth0]/system",
    ],
)  # fmt: skip
def test_unusable_uris_are_one_line_errors(uri: str) -> None:
    with pytest.raises(LimapyError) as e:
        target.parse(uri)
    assert e.value.message and "\n" not in e.value.message and "\n" not in (e.value.hint or "")
    assert type(e.value) is LimapyError


KEYS = ["/home/u/my keys/id_ed25519", '/home/u/it\'s "the" key', "/k/$(touch x)`y`;&|<>*?", "-i-looks-like-an-option"]


@pytest.mark.parametrize("keyfile", KEYS)
def test_proxy_command_quotes_the_keyfile(keyfile: str) -> None:
    jump = Jump("kvm.example", "alice", 2222, keyfile, no_verify=True)
    cmd = jump.proxy_command()
    argv = shlex.split(cmd)
    assert argv[argv.index("-i") + 1] == keyfile
    assert argv[0] == "ssh" and argv[-3:] == ["-W", "[%h]:%p", "alice@kvm.example"]
    assert " [%h]:%p " in cmd  # OpenSSH's tokens stay unquoted for it to expand
    assert argv[argv.index("-p") + 1] == "2222"
    opts = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    assert {"BatchMode=yes", "IdentitiesOnly=yes", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"} <= set(
        opts
    )
    assert "%" not in cmd.replace("[%h]:%p", "")  # nothing else for OpenSSH to expand


def test_proxy_command_from_a_parsed_uri() -> None:
    jump = target.parse("qemu+ssh://alice@kvm.example/system?keyfile=%2Fhome%2Fa%20b%2Fid")
    assert jump is not None and jump.needs_command
    argv = shlex.split(jump.proxy_command("/usr/bin/ssh"))
    assert argv[0] == "/usr/bin/ssh" and argv[argv.index("-i") + 1] == "/home/a b/id" and "-p" not in argv


# -- volumes.to_png --------------------------------------------------------------------------------------------


def decode_png(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and RGB pixels of an 8-bit truecolour PNG, read here (chunks, CRCs, zlib, filter 0)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", png[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        pos += 12 + n
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, comp, filt, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = 1 + width * 3
    assert len(raw) == stride * height
    rows = [raw[y * stride : (y + 1) * stride] for y in range(height)]
    assert all(r[0] == 0 for r in rows)  # filter type None
    return width, height, b"".join(r[1:] for r in rows)


def ppm(width: int, height: int, pixels: bytes, sep: bytes = b"\n") -> bytes:
    """A P6 file: `sep` between the header's fields, then the one whitespace byte the format allows."""
    return b"P6" + sep + str(width).encode() + sep + str(height).encode() + sep + b"255" + sep[-1:] + pixels


# the first pixel is whitespace (0x20 0x0a 0x09): exactly one whitespace byte ends the header
WHITESPACE_FIRST = bytes([0x20, 0x0A, 0x09, 0x0D, 0x0C, 0x0B]) + bytes(range(12))


@pytest.mark.parametrize("sep", [b"\n", b" ", b"\t", b"\r", b"  \n"])
def test_ppm_whose_pixels_start_with_whitespace(sep: bytes) -> None:
    data = ppm(3, 2, WHITESPACE_FIRST, sep)
    assert decode_png(to_png(data, "image/x-portable-pixmap")) == (3, 2, WHITESPACE_FIRST)


def test_ppm_whose_pixels_start_with_digits() -> None:
    pixels = b"255" + b"9" * 9
    assert decode_png(to_png(ppm(2, 2, pixels), "image/x-portable-pixmap")) == (2, 2, pixels)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.data())
def test_ppm_round_trip(width: int, height: int, data: st.DataObject) -> None:
    pixels = data.draw(st.binary(min_size=width * height * 3, max_size=width * height * 3))
    assert decode_png(to_png(ppm(width, height, pixels), "image/x-portable-pixmap")) == (width, height, pixels)


def test_png_passes_through() -> None:
    png = to_png(ppm(1, 1, b"\x01\x02\x03"), "image/x-portable-pixmap")
    assert to_png(png, "image/png") == png


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (ppm(3, 2, WHITESPACE_FIRST[:-1]), "truncated"),
        (ppm(3, 2, b""), "truncated"),
        (b"P6\n3 2\n255", "cannot read"),  # no byte after the header
        (b"P6\n3", "cannot read"),
        (b"", "cannot read"),
        (b"P3\n1 1\n255\n0 0 0\n", "cannot read"),  # ASCII PPM
        (b"GIF89a" + bytes(20), "cannot read"),
        (b"P6\n1 1\n65535\n" + bytes(6), "levels"),
    ],
)
def test_unreadable_screenshots(data: bytes, why: str) -> None:
    with pytest.raises(LimapyError, match=why) as e:
        to_png(data, "image/x-portable-pixmap")
    assert "\n" not in e.value.message
