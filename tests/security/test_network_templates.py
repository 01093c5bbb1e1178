"""Hardening, second round, items 2 and 3: a template from the network names no host file and makes limapy
reach no loopback, link-local or private address (as written, as resolved, as connected, after a redirect)
unless the user passes --allow-local-files. Templates and images served over HTTP on 127.0.0.1; a template's
own origin is the user's choice and stays allowed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from limapy import download
from limapy.base.errors import LimapyError
from tests.security.conftest import Server, final_error, instances, limapy, one_error, qcow2


@pytest.fixture
def other() -> Iterator[Server]:
    """A second server on 127.0.0.1: another origin than the template's."""
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def served(server: Server, tmp_path: Path, body: str, image: bool = True) -> str:
    head = ""
    if image:
        server.add("/img.qcow2", qcow2(tmp_path / "img.qcow2").read_bytes())
        head = f"images: [{{location: '{server.base}/img.qcow2', arch: x86_64}}]\n"
    return server.add("/t.yaml", f"{head}arch: x86_64\n{body}".encode(), content_type="text/plain")


# --- 2. no host paths in what a network template makes limapy use ------------------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    s = tmp_path / "id_rsa"
    s.write_text("-----BEGIN OPENSSH PRIVATE KEY----- not really\n")
    return s


HOST_PATH_FIELDS = {
    "images[0].location": "images: [{{location: '{p}', arch: x86_64}}]\n",
    "images[0].kernel.location": "images: [{{location: '{u}', arch: x86_64, kernel: {{location: '{p}'}}}}]\n",
    "images[0].initrd.location": "images: [{{location: '{u}', arch: x86_64, initrd: {{location: '{p}'}}}}]\n",
    "firmware.images[0].location": "firmware: {{images: [{{location: '{p}', arch: x86_64}}]}}\n",
    "osOpts.Windows.virtioWin[0].location": "osOpts: {{Windows: {{virtioWin: [{{location: '{p}', arch: x86_64}}]}}}}\n",
    "osOpts.Windows.opensshMsi.location": "osOpts: {{Windows: {{opensshMsi: {{location: '{p}', arch: x86_64}}}}}}\n",
}


@pytest.mark.parametrize("field", sorted(HOST_PATH_FIELDS))
@pytest.mark.parametrize("form", ["{s}", "file://{s}", "~/{rel}"])
def test_network_template_names_no_host_file(home: Path, tmp_path: Path, server: Server, secret: Path,
                                             field: str, form: str) -> None:  # fmt: skip
    rel = Path("..") / Path(*[".."] * len(Path.home().parts)) / str(secret).lstrip("/")
    path = form.format(s=secret, rel=rel)
    img = server.add("/img.qcow2", qcow2(tmp_path / "img.qcow2").read_bytes())
    body = HOST_PATH_FIELDS[field].format(p=path, u=img)
    has_images = field.startswith("images")
    url = served(server, tmp_path, body, image=not has_images)
    for command in (("validate", url), ("create", "--name", "r", url)):
        cp = limapy(*command)
        err = one_error(cp)
        assert f"{url}:" in err and f"refusing to use the host file `{path}` ({field})" in err, err
        assert "came from the network" in err and "--allow-local-files" in cp.stderr
    assert instances(home) == []
    assert limapy("validate", "--allow-local-files", url).returncode in (0, 3)  # the user's choice: not refused


# --- 3. no local addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.2", "127.1", "2130706433", "0x7f000001", "localhost", "LocalHost.",
                                  "[::1]", "[::ffff:127.0.0.1]", "169.254.169.254", "10.1.2.3", "192.168.0.10",
                                  "172.16.5.4", "100.64.0.1", "[fd00::1]", "[fe80::1]", "0.0.0.0", "[::]"])
def test_literal_local_addresses_are_refused_before_any_connection(home: Path, tmp_path: Path, server: Server,
                                                                   host: str) -> None:  # fmt: skip
    image, script = f"http://{host}:9/x.qcow2", f"http://{host}:9/x.sh"
    for target, body in ((image, f"images: [{{location: '{image}', arch: x86_64}}]\n"),
                         (script, f"provision: [{{mode: system, file: '{script}'}}]\n"),
                         (script, f"base: '{script}'\n"),
                         (image, f"base: '{image}'\n")):  # a bare image URL: Lima makes a template of it
        url = served(server, tmp_path, body, image="images" not in body)
        err = one_error(limapy("validate", url))
        assert f"{url}:" in err and f"refusing to fetch `{target}`" in err and "came from the network" in err, err
        assert "address" in err


def test_metadata_service_is_not_inlined_into_the_seed(home: Path, tmp_path: Path, server: Server) -> None:
    url = served(server, tmp_path, "provision: [{mode: data, path: /etc/x, "
                                   "file: 'http://169.254.169.254/latest/meta-data/iam'}]\n")
    err = one_error(limapy("create", "--name", "r", url))
    assert "169.254.169.254 is a link-local address" in err and f"{url}:3:" in err, err
    assert instances(home) == []


def test_another_local_origin_is_refused_and_never_asked(home: Path, tmp_path: Path, server: Server,
                                                         other: Server) -> None:  # fmt: skip
    other.add("/b.yaml", b"cpus: 1\n", content_type="text/plain")
    other.add("/p.sh", b"#!/bin/sh\necho local service\n", content_type="text/plain")
    for body in (f"base: '{other.base}/b.yaml'\n", f"provision: [{{mode: system, file: '{other.base}/p.sh'}}]\n"):
        url = served(server, tmp_path, body)
        err = one_error(limapy("validate", url))
        assert "127.0.0.1 is a loopback address" in err and "refusing to fetch" in err, err
    other.add("/img.qcow2", qcow2(tmp_path / "o.qcow2").read_bytes())
    url = served(server, tmp_path, f"images: [{{location: '{other.base}/img.qcow2', arch: x86_64}}]\n", image=False)
    assert "loopback" in one_error(limapy("create", "--name", "r", url))
    assert other.requests == []
    assert instances(home) == []
    # the user's consent, and the template's own origin, stay allowed
    cp = limapy("create", "--name", "r", "--allow-local-files", url)
    assert cp.returncode == 0, cp.stderr
    same = served(server, tmp_path, "provision: [{mode: system, file: p2.sh}]\n")  # relative: the same origin
    server.add("/p2.sh", b"#!/bin/sh\necho hi\n", content_type="text/plain")
    assert limapy("validate", same).returncode == 0


def test_a_redirect_from_the_origin_to_a_local_address_is_refused(home: Path, tmp_path: Path, server: Server,
                                                                  other: Server) -> None:  # fmt: skip
    other.add("/img.qcow2", qcow2(tmp_path / "o.qcow2").read_bytes())
    server.add("/img.qcow2", redirect=f"{other.base}/img.qcow2")
    url = served(server, tmp_path, f"images: [{{location: '{server.base}/img.qcow2', arch: x86_64}}]\n",
                 image=False)  # fmt: skip
    err = final_error(limapy("create", "--name", "r", url))
    assert f"refusing to fetch `{other.base}/img.qcow2`" in err and "loopback" in err, err
    assert "images[0].location" in err and f"{url}:2:" in err
    assert other.requests == [] and instances(home) == []


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names resolved as the test says (each lookup pops the next answer while more than one is left)."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in answers:
            queue = answers[host]
            addr = queue.pop(0) if len(queue) > 1 else queue[0]
            return real(addr, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_a_name_resolving_to_a_local_address_is_refused(home: Path, server: Server, other: Server,
                                                        fake_dns: dict[str, list[str]]) -> None:  # fmt: skip
    from limapy.config.load import load
    from limapy.ops.fetch import template_fetcher

    fake_dns["metadata.example"] = ["127.0.0.1"]
    port = other.base.rsplit(":", 1)[1]
    other.add("/b.yaml", b"cpus: 1\n", content_type="text/plain")
    url = server.add("/t.yaml", f"base: 'http://metadata.example:{port}/b.yaml'\nimages: [{{location: /x}}]\n"
                     .encode(), content_type="text/plain")  # fmt: skip
    with pytest.raises(LimapyError, match=r"metadata\.example resolves to 127\.0\.0\.1, a loopback address"):
        load(url, fetcher=template_fetcher)
    assert other.requests == []


def test_a_name_that_changes_its_answer_is_caught_at_the_connection(home: Path, server: Server,
                                                                    fake_dns: dict[str, list[str]]) -> None:
    """DNS rebinding: public when checked, 127.0.0.1 when connected."""
    from limapy.base import netpolicy

    fake_dns["rebind.example"] = ["93.184.215.14", "127.0.0.1"]
    port = server.base.rsplit(":", 1)[1]
    server.add("/img", b"x" * 1000)
    with pytest.raises(LimapyError, match=r"rebind\.example reached 127\.0\.0\.1, a loopback address"):
        download.fetch(f"http://rebind.example:{port}/img", guard=netpolicy.Guard("t.yaml:3:3: images[0].location"))
    assert server.requests == []


def test_a_public_url_may_not_redirect_to_a_local_one(fake_dns: dict[str, list[str]]) -> None:
    """For every fetch, whoever named it: a public address redirecting to a local one is refused."""
    from limapy.base import netpolicy

    fake_dns["mirror.example"] = ["93.184.215.14"]
    why = netpolicy.redirect_problem("https://mirror.example/img", "http://169.254.169.254/latest/")
    assert why is not None and "169.254.169.254 is a link-local address" in why
    assert netpolicy.redirect_problem("http://127.0.0.1:8000/a", "http://127.0.0.1:8001/b") is None  # the user's
    assert netpolicy.redirect_problem("https://mirror.example/a", "https://mirror.example/b") is None


def test_address_kinds() -> None:
    from limapy.base import netpolicy

    for addr, kind in [("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:10.0.0.1", "private"),
                       ("64:ff9b::7f00:1", "loopback"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
                       ("fd12:3456::1", "unique-local"), ("100.64.1.1", "non-public"), ("0.0.0.0", "unspecified"),
                       ("224.0.0.1", "multicast"), ("8.8.8.8", None), ("2606:4700::1111", None)]:  # fmt: skip
        got = netpolicy.address_kind(addr)
        assert (got is None and kind is None) or (got is not None and kind is not None and got.startswith(kind)), addr
