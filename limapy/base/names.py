"""Names Lima derives from an instance, in one place so the seed, the QEMU argv and `list` agree."""

from __future__ import annotations

#: The file that makes a directory an instance (its configuration); Lima's MACs derive from its path too.
LIMA_YAML = "lima.yaml"


def hostname_for(name: str) -> str:
    """The guest hostname: "lima-" + instance name with "." and "_" made "-"."""
    return "lima-" + name.replace(".", "-").replace("_", "-")


def mount_tag(location: str, mount_point: str) -> str:
    """The 9p/virtiofs tag of a mount: "lima-" + hex of the first 8 bytes of sha256(location:mountPoint).

    The seed's `mounts:` entries and QEMU's `-virtfs mount_tag=` must name the same tag."""
    import hashlib

    return "lima-" + hashlib.sha256(f"{location}:{mount_point}".encode()).digest()[:8].hex()
