"""`limapy windows answer-iso`: the Windows answer ISO (label `autounattend`) on its own, to boot a Windows install
ISO with plain QEMU (docs/windows.md has the commands for both arches).

The random password of the user is stored 0600 next to the ISO (<ISO>.password), with `--server` also the
built-in Administrator's (<ISO>.admin-password); they are never printed. arm64 needs NetKVM, copied from a
virtio-win ISO (`--virtio-win PATH`) onto the answer ISO's $WinPEDriver$ (x86_64 with `--virtio-disk`: viostor
too); `--language` is the install ISO's language, `--locale` another format and keyboard. Without
an SSH key given, the user's (limapy's own, then ~/.ssh/id_*.pub) are used; without any, a key pair is made next
to the ISO (<ISO>.key, 0600), so the recipe works on a fresh machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from limapy.base.errors import LimapyError, UsageError
from limapy.config.model import Spec

#: Microsoft's arch names (what Windows media and the answer file say) and Lima's.
ARCHES = {"amd64": "x86_64", "arm64": "aarch64", "x86_64": "x86_64", "aarch64": "aarch64"}


def load_spec(path: Path | None, arch: str) -> Spec:
    """The lima.yaml as limapy reads it (base: embedded, defaults filled, validated), or without one a
    minimal Windows template filled the same way: one place decides every default."""
    from limapy.config import check, load_config
    from limapy.config.load import load_bytes

    if path is not None:
        spec = load_config(str(path)).spec
    else:
        virtio = "  Windows:\n    virtioWin: [{location: virtio-win.iso}]\n" if arch == "aarch64" else "  Windows: {}\n"
        text = f"os: Windows\narch: {arch}\nimages:\n- {{location: windows.iso, arch: {arch}}}\nosOpts:\n{virtio}"
        spec = check(load_bytes(text.encode(), "<answer-iso>")).spec
    return dataclasses.replace(spec, arch=arch)


def ssh_keys(paths: Sequence[Path], output: Path) -> tuple[list[str], Path | None]:
    """The public keys to install, and the private key generated for them when none was found anywhere
    (ed25519, `<ISO>.key`, 0600)."""
    generated = None
    found = list(paths)
    if not found:
        from limapy.base.dirs import config_dir

        found = [config_dir() / "user.pub"] if (config_dir() / "user.pub").exists() else []
        found += sorted((Path.home() / ".ssh").glob("id_*.pub"))
    if not found:
        from limapy.base import proc

        generated = output.with_name(output.name + ".key")
        for old in (generated, generated.with_name(generated.name + ".pub")):
            old.unlink(missing_ok=True)
        proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "limapy-answer-iso", "-f", generated])
        generated.chmod(0o600)
        found = [generated.with_name(generated.name + ".pub")]
    keys = [line.strip() for p in found for line in p.read_text().splitlines() if line.strip()]
    if not keys:
        raise LimapyError("no SSH public key found", hint="pass --ssh-key FILE")
    return keys, generated


def answer_iso(
    output: Path,
    *,
    arch: str,
    config: Path | None = None,
    ssh_key: Sequence[Path] = (),
    server: bool = False,
    image_index: int | None = None,
    image_name: str | None = None,
    virtio_win: Path | None = None,
    virtio_disk: bool = False,
    language: str = "en-US",
    locale: str | None = None,
    product_key: str | None = None,
    openssh_msi: Path | None = None,
    openssh_msi_sha256: str | None = None,
    say: Callable[[str], None] = print,
) -> None:
    from limapy.guest.windows import language as winlocale
    from limapy.guest.windows import virtiowin
    from limapy.guest.windows.answer import new_password, write_answer_iso, write_password_file

    if arch not in ARCHES:
        raise UsageError(f"--arch {arch!r}: use amd64 or arm64")
    lima_arch = ARCHES[arch]
    spec = load_spec(config, lima_arch)
    if lima_arch == "aarch64" and virtio_win is None:
        raise LimapyError("arm64 needs NetKVM from virtio-win", hint="pass --virtio-win virtio-win.iso")
    drivers = None
    if virtio_win is not None:
        drivers = virtiowin.read_drivers(
            virtio_win, virtiowin.drivers_for(virtio_disk=virtio_disk and lima_arch == "x86_64"),
            version=virtiowin.version_dir(server), arch=lima_arch,
        )  # fmt: skip
    chosen = winlocale.choose((language,), override=locale or spec.windows.locale)
    msi = None
    if openssh_msi is not None:
        try:
            msi = openssh_msi.read_bytes()
        except OSError as e:
            raise LimapyError(f"{openssh_msi}: {e.strerror}") from None
        digest = hashlib.sha256(msi).hexdigest()
        if openssh_msi_sha256 and openssh_msi_sha256.lower().removeprefix("sha256:") != digest:
            raise LimapyError(f"{openssh_msi}: sha256 {digest} does not match --openssh-msi-sha256")
    password = new_password()
    admin_password = new_password() if server else None
    keys, generated = ssh_keys(ssh_key, output)
    win = spec.windows
    write_answer_iso(
        output,
        spec,
        name=config.stem if config else "windows",
        arch=spec.arch,
        password=password,
        ssh_pubkeys=keys,
        image_index=image_index if image_index is not None else win.image_index,
        image_name=image_name or win.edition,
        is_server=server,
        locale=chosen,
        opensshmsi=msi,
        product_key=product_key or win.product_key,
        admin_password=admin_password,
        winpe_drivers=drivers,
    )
    pw_file = output.with_name(output.name + ".password")
    write_password_file(pw_file, password)
    if admin_password is not None:
        write_password_file(output.with_name(output.name + ".admin-password"), admin_password)
    say(f"wrote {output} (label autounattend); the password of user {spec.user.name!r} is in {pw_file} (0600)")
    if generated is not None:
        say(f"no SSH key was found, so one was made: ssh -i {generated} -p 2222 {spec.user.name}@127.0.0.1")
