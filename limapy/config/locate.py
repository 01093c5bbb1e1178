"""Locators: a path, `template:NAME`, `file://`, `https://`, or `-` for stdin, read into bytes.

`config` never touches the network itself: remote locators go through a fetcher the caller passes
(the download cache); without one they are a clear error.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limapy.base import dirs, netpolicy
from limapy.base.errors import ConfigError

#: `fetcher(url)`, or `fetcher(url, guard)` for a URL a network template names (limapy.base.netpolicy.Guard).
Fetcher = Callable[..., Path]


@dataclass(frozen=True)
class Located:
    display: str  # how errors name it
    key: str  # canonical identity, for loop detection
    raw: bytes
    directory: Path | None  # where relative locators inside it resolve; None for stdin/URLs
    name_hint: str | None  # the instance name this template suggests
    warnings: tuple[str, ...] = ()
    file: Path | None = None  # the local file read; None for stdin and downloads
    #: Files whose appearance would change what this locator names (a `template:`'s earlier candidates).
    shadows: tuple[Path, ...] = ()
    #: Made up from an image URL (`image_template`), not fetched: its URL is not an origin anyone chose.
    synthesized: bool = False


def template_dirs() -> list[Path]:
    out: list[Path] = []
    env = os.environ.get(dirs.ENV_TEMPLATES_PATH)
    if env:
        out += [Path(p).expanduser() for p in env.split(":") if p]
    out.append(dirs.user_templates_dir())
    out.append(dirs.shipped_templates_dir())
    return out


def template_file_name(name: str) -> str:
    """`ubuntu-24.04` -> `ubuntu-24.04.yaml` (an extension starting with a digit is not an extension)."""
    suffix = Path(name).suffix
    if not suffix or suffix[1:2].isdigit():
        return name + ".yaml"
    return name


def template_candidates(name: str) -> list[Path]:
    """Where `template:NAME` is looked for, in order (the first that is a file wins)."""
    fname = template_file_name(name)
    return [d / fname for d in template_dirs()]


def find_template(name: str) -> Path:
    if not name or ".." in Path(name).parts or name.startswith("/"):
        raise ConfigError([f"template `{name}`: invalid template name"])
    fname = template_file_name(name)
    searched = template_dirs()
    for d in searched:
        candidate = d / fname
        if candidate.is_file():
            return candidate
    raise ConfigError(
        [f"template `{name}` not found"],
        hint="searched " + ", ".join(str(d) for d in searched) + "; `limapy info` lists the templates",
    )


def is_remote(locator: str) -> bool:
    return locator.startswith(("http://", "https://"))


_SCHEME_RE = re.compile(r"([a-z][a-z0-9+.-]+):(?!//)(.+)\Z")


def custom_scheme(locator: str) -> str | None:
    """`fedora-rawhide:_images/x` style locators are resolved by a `limactl-url-<scheme>` plugin in Lima."""
    m = _SCHEME_RE.fullmatch(locator)
    if not m or m.group(1) in ("template", "file", "http", "https") or len(m.group(1)) < 2:
        return None
    return m.group(1)


class PluginMissing(ConfigError):
    pass


def _resolve_plugin(scheme: str, locator: str) -> str:
    import shutil

    from limapy.base import proc

    for prog in (f"limapy-url-{scheme}", f"limactl-url-{scheme}"):
        exe = shutil.which(prog)
        if exe:
            cp = proc.run([exe, locator], check=False, timeout=60)
            out = cp.stdout.decode(errors="replace").strip()
            if cp.returncode != 0 or not out:
                err = cp.stderr.decode(errors="replace").strip()[:200]
                raise ConfigError([f"{locator}: URL plugin {prog} failed: {err}"])
            return out.splitlines()[-1]
    raise PluginMissing(
        [f"{locator}: the `{scheme}:` scheme needs the URL plugin limapy-url-{scheme} (or limactl-url-{scheme})"]
    )


def name_from_locator(locator: str) -> str | None:
    if locator == "-":
        return None
    base = locator.rsplit("/", 1)[-1].split(":")[-1]
    for ext in (".yaml", ".yml"):
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
    return base.lower() or None


def _git_symlink_target(path: Path, raw: bytes) -> Path | None:
    """A git symlink checked out as a text file (core.symlinks=false) holds just the target's name."""
    if len(raw) > 256 or b"\n" in raw.rstrip(b"\n") or b":" in raw:
        return None
    name = raw.decode("utf-8", "replace").strip()
    if not name.endswith((".yaml", ".yml")):
        return None
    target = path.parent / name
    return target if target.is_file() and target.resolve() != path.resolve() else None


#: Lima inlines templates and provision files up to 4 MiB; nothing bigger is read at all.
MAX_BYTES = 4 << 20


def read_capped(f: Any, display: str, limit: int = MAX_BYTES) -> bytes:
    """Read at most `limit` bytes; more is an error, found without reading the rest (e.g. /dev/zero)."""
    raw = f.read(limit + 1)
    if len(raw) > limit:
        raise ConfigError([f"{display}: larger than {limit >> 20} MiB; a lima.yaml (or a file it includes) may be "
                           f"at most {limit >> 20} MiB"])
    return bytes(raw)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _read_regular(path: Path, display: str) -> bytes:
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError([f"{display}: is {_kind(st.st_mode)}, not a lima.yaml file"])
    with open(path, "rb") as f:
        return read_capped(f, display)


def read_path(path: Path, display: str) -> bytes:
    try:
        raw = _read_regular(path, display)
        for _ in range(8):
            target = _git_symlink_target(path, raw)
            if target is None:
                break
            path, raw = target, _read_regular(target, display)
        return raw
    except FileNotFoundError:
        raise ConfigError([f"{display}: no such file"]) from None
    except PermissionError:
        raise ConfigError([f"{display}: permission denied"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{display}: is a directory, not a lima.yaml file"]) from None
    except OSError as e:
        raise ConfigError([f"{display}: cannot read: {e.strerror or e}"]) from None
    except ValueError:  # a NUL byte or an unencodable character in the path
        raise ConfigError([f"{display!r}: not a usable file name"]) from None


class RemoteReadsLocal(ConfigError):
    """A template fetched over the network names a file on this host."""


REMOTE_HINT = netpolicy.HINT


def refuse_local(locator: str, what: str = "file") -> RemoteReadsLocal:
    """The refusal, to be prefixed with where the reference is (FILE:LINE:COL of the remote template)."""
    return RemoteReadsLocal(
        [f"refusing to read the host {what} `{locator}`: this template came from the network"], hint=REMOTE_HINT
    )


#: A bare image URL (Lima's `limactl create URL.qcow2`, also as a `base:`): a template is made from it
#: (pkg/limatmpl/locator.go imageTemplate, line 180; the extensions: imageURLRegex, line 147).
_IMAGE_URL_RE = re.compile(r"(?:https?://|file://|/|\.{0,2}/).*\.(?:img|qcow2|raw|iso|ipsw)(?:\.(?:gz|xz|bz2|zstd))?\Z",
                           re.I)  # fmt: skip
_IMAGE_EXT_RE = re.compile(r"\.(img|qcow2|raw|iso|ipsw)(\.(gz|xz|bz2|zstd))?$")
_ARCH_KEYWORDS = {"aarch64": "aarch64", "amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l", "armv7l": "armv7l",
                  "ppc64el": "ppc64le", "ppc64le": "ppc64le", "riscv64": "riscv64", "s390x": "s390x",
                  "x86_64": "x86_64"}  # fmt: skip
_OS_KEYWORDS = {"FreeBSD": "FreeBSD", "macOS": "Darwin", ".ipsw": "Darwin"}
#: Tags Lima strips from an image's file name to make the instance name (locator.go genericTags).
_GENERIC_TAGS = ("base", "basic", "cloud", "cloudimg", "cloudinit", "current", "daily", "default", "generic",
                 "genericcloud", "kvm", "latest", "linux", "minimal", "openstack", "release", "restore", "server",
                 "std", "stream", "uefi", "vm")  # fmt: skip


def image_url(locator: str) -> bool:
    return _IMAGE_URL_RE.fullmatch(locator) is not None


def _host_arch() -> str:
    import platform

    from limapy.config.hostinfo import lima_arch

    return lima_arch(platform.machine())


def instance_name_from_image(url: str, arch: str) -> str:
    """Lima's InstNameFromImageURL (locator.go line 240): the file name without format, tags and dates."""
    name = _IMAGE_EXT_RE.sub("", url.rsplit("/", 1)[-1].lower())
    name = name.removeprefix("nocloud_")
    for tag in _GENERIC_TAGS:
        name = re.sub(rf"[-_.]{tag}\b", "", name)
    name = name.replace("universalmac_", "macos-", 1).replace("arm64-aarch64", "arm64", 1)
    if arch == _host_arch():
        name = re.sub(rf"[-_.]{arch}\b", "", name)
    name = re.sub(r"[-_.]20\d{6}([-_.]\d+)?\b", "", name)
    name = re.sub(r"^arch\b", "archlinux", name)
    name = re.sub(r"-(\d+)-(\d+)\.", lambda m: f"-{m.group(1)}." if m.group(1) == m.group(2) else m.group(0), name)
    return re.sub(r"^(macos-[\d.]+)[-_].*$", r"\1", name)


def image_template(url: str) -> Located:
    """The template Lima synthesises for an image URL, without downloading it: `os`, `arch` and
    `images: [{location, arch}]`, the OS and arch read from the URL's words (the host's arch when none is
    there, with a warning); the instance name from the file name, as Lima makes it."""
    import json

    from limapy.guest.rules import for_os as guest_rules

    image_os = next((os_ for word, os_ in _OS_KEYWORDS.items() if re.search(rf"(?i)\b{re.escape(word)}\b", url)),
                    "Linux")  # fmt: skip
    arch = next((a for word, a in _ARCH_KEYWORDS.items() if re.search(rf"\b{word}\b", url)), None)
    warnings: tuple[str, ...] = ()
    if arch is None:
        only = guest_rules(image_os).only_arch  # Lima: a macOS image is aarch64
        arch = only or _host_arch()
        if only is None:
            warnings = (f"cannot determine image arch from URL `{url}`; assuming `{arch}`",)
    raw = f"os: {json.dumps(image_os)}\narch: {json.dumps(arch)}\nimages:\n- location: {json.dumps(url)}\n" \
          f"  arch: {json.dumps(arch)}\n"  # fmt: skip
    return Located(url, url, raw.encode(), None, instance_name_from_image(url, arch) or None, warnings,
                   synthesized=True)


def locate(
    locator: str,
    *,
    relative_to: Path | None = None,
    fetcher: Fetcher | None = None,
    remote_base: str | None = None,
    allow_local: bool = False,
) -> Located:
    """Read what `locator` names. Inside a remote document (`remote_base`, its URL), a relative locator is
    resolved against that URL, and a local file (a path, `~`, `file://`) is refused unless `allow_local`."""
    warnings: list[str] = []
    if locator == "-":
        return Located("-", "-", read_capped(sys.stdin.buffer, "-"), None, None)
    if locator.startswith("template://"):
        name = locator[len("template://") :]
        warnings.append(f"`{locator}` should be written `template:{name}` (as since Lima v2.0)")
        locator = "template:" + name
    if locator.startswith("template:"):
        name = locator[len("template:") :]
        path = find_template(name)
        candidates = template_candidates(name)
        return Located(
            locator,
            locator,
            read_path(path, f"{locator} ({path})"),
            path.parent,
            name_from_locator(name),
            tuple(warnings),
            path.resolve(),
            tuple(candidates[: candidates.index(path)] if path in candidates else candidates),
        )
    if image_url(locator) and not (remote_base is not None and not is_remote(locator)):
        if remote_base is not None and not allow_local and not netpolicy.same_origin(locator, remote_base):
            why = netpolicy.literal_problem(locator)
            if why is not None:
                raise RemoteReadsLocal([f"refusing to fetch `{locator}`: {why}, and this template came from the "
                                        "network"], hint=REMOTE_HINT)  # fmt: skip
        return image_template(locator)
    scheme = custom_scheme(locator)
    if scheme is not None:
        locator = _resolve_plugin(scheme, locator)
        found = locate(locator, relative_to=relative_to, fetcher=fetcher, remote_base=remote_base,
                       allow_local=allow_local)
        return dataclasses.replace(found, file=None)  # a plugin may answer differently next time
    if remote_base is not None and not is_remote(locator):
        local = locator.startswith(("/", "~", "file:")) or re.match(r"^[A-Za-z]:[\\/]", locator)
        if local and not allow_local:
            raise refuse_local(locator)
        if not local:
            locator = urllib.parse.urljoin(remote_base, locator)
    if is_remote(locator):
        if fetcher is None:
            raise ConfigError(
                [f"{locator}: remote templates need the download cache, which is not available here"],
                hint="download the file and pass its path",
            )
        path = _fetch_template(locator, fetcher, None if allow_local else remote_base)
        located = Located(locator, locator, read_path(path, locator), None, name_from_locator(locator))
        return located
    if locator.startswith("file://"):
        locator = locator[len("file://") :]
    path = Path(locator).expanduser()
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    display = locator if relative_to is None else str(path)
    raw = read_path(path, display)
    real = path.resolve()
    return Located(display, str(real), raw, real.parent, name_from_locator(str(path)), file=real)


def _fetch_template(url: str, fetcher: Fetcher, named_by: str | None) -> Path:
    """`url` through the fetcher; when a network template (`named_by`, its URL) names it, only on a public
    address or that template's own origin (as written here, as resolved and as connected when fetched)."""
    if named_by is None:
        return fetcher(url)
    why = None if netpolicy.same_origin(url, named_by) else netpolicy.literal_problem(url)
    if why is not None:
        raise RemoteReadsLocal([f"refusing to fetch `{url}`: {why}, and this template came from the network"],
                               hint=REMOTE_HINT)  # fmt: skip
    try:
        return fetcher(url, netpolicy.Guard(origin=named_by))
    except netpolicy.LocalAddressError as e:
        raise RemoteReadsLocal([e.message], hint=REMOTE_HINT) from None


def remote_url(located: Located) -> str | None:
    """The URL a located document came from, or None for a local one."""
    return located.key if is_remote(located.key) else None
