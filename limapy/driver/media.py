"""First-boot media, as every driver writes them: the guest OS's (limapy.guest.GuestOS.write_media: the NoCloud
seed, the Windows answer ISO), with the guest user's SSH keys. Written at materialize time, never by a dry run."""

from __future__ import annotations

from limapy import guest, ssh
from limapy.config.model import Spec
from limapy.guest.boot import Media
from limapy.instance import store


def write(inst: store.Instance, spec: Spec, media: Media) -> None:
    keys = ssh.authorized_keys(spec)
    guest.for_spec(spec).write_media(inst, spec, media, keys)
