"""Which image of a Windows install ISO to install, and what Windows Server media needs.

The image list comes from limapy.guest.windows.media (the WIM's XML, read from the ISO). Client media install Pro
unless told otherwise; server media install Standard (Desktop Experience), on x86_64 only, keyless only
when they are evaluation media.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from limapy.base.errors import LimapyError
from limapy.config.model import Spec
from limapy.guest.windows import language as winlocale
from limapy.guest.windows.media import (
    LIMA_INDEX_CLIENT,
    LIMA_INDEX_SERVER,
    MediaInfo,
    WimImage,
    inspect_iso_lenient,
    ms_arch,
)

# --------------------------------------------------------------------------- choosing


def _check_arch(info: MediaInfo, arch: str) -> None:
    if info.arch and info.arch != arch:
        raise LimapyError(
            f"{info.describe()} is an {ms_arch(info.arch)} ISO but the instance arch is {arch}",
            hint=f"use a {ms_arch(arch)} install ISO, or set `arch: {info.arch}` in the template",
        )


def _listing(images: tuple[WimImage, ...]) -> str:
    return "; ".join(f"{img.index}: {img.display_name or img.name}" for img in images)


def _is_pro(img: WimImage) -> bool:
    return (img.edition_id or "").lower() == "professional" or any(
        n.lower().endswith(" pro") for n in img.names()
    )


def _is_standard_desktop(img: WimImage) -> bool:
    if any("standard" in n.lower() and "desktop experience" in n.lower() for n in img.names()):
        return True
    edition = (img.edition_id or "").lower()
    return edition.startswith("serverstandard") and (img.installation_type or "").lower() == "server"


def _fallback(info: MediaInfo | None, arch: str) -> tuple[int, str | None, list[str]]:
    is_server = info.is_server if info is not None else False
    index = LIMA_INDEX_SERVER if is_server else LIMA_INDEX_CLIENT.get(arch, 1)
    kind = "server" if is_server else f"{ms_arch(arch)} client"
    return (
        index,
        None,
        [
            f"Windows image list unavailable: using image index {index} as Lima does for {kind} media; "
            "set osOpts.Windows.imageIndex if Setup installs the wrong edition"
        ],
    )


def choose_image(
    info: MediaInfo | None, *, arch: str, edition: str | None, image_index: int | None
) -> tuple[int, str | None, list[str]]:
    """Pick the image to install: (index, image name or None, warnings)."""
    warnings: list[str] = []
    if info is not None:
        _check_arch(info, arch)
    images = info.images if info is not None else ()

    if image_index is not None:
        if edition:
            warnings.append(f"osOpts.Windows.imageIndex {image_index} overrides edition {edition!r}")
        if not images:
            return image_index, None, warnings
        for img in images:
            if img.index == image_index:
                if img.arch and img.arch != arch:
                    raise LimapyError(
                        f"image {image_index} of {info.describe() if info else 'the install ISO'} is "
                        f"{ms_arch(img.arch)} but the instance arch is {arch}"
                    )
                return img.index, img.name, warnings
        raise LimapyError(
            f"{info.describe() if info else 'the install ISO'} has no image {image_index}; "
            f"available: {_listing(images)}"
        )

    if not images:
        if edition:
            raise LimapyError(
                f"cannot select edition {edition!r}: the install ISO's image list could not be read",
                hint="set osOpts.Windows.imageIndex to the image number instead",
            )
        index, name, fallback = _fallback(info, arch)
        return index, name, warnings + fallback

    assert info is not None
    candidates = [img for img in images if img.arch in (None, arch)]
    if not candidates:
        arches = sorted({ms_arch(img.arch) for img in images})
        raise LimapyError(
            f"{info.describe()} holds only {'/'.join(arches)} images but the instance arch is {arch}"
        )
    if edition:
        wanted = edition.strip().lower()
        by_name = [img for img in candidates if wanted in (n.lower() for n in img.names())]
        by_id = [img for img in candidates if (img.edition_id or "").lower() == wanted]
        matches = by_name or by_id
        if not matches:
            raise LimapyError(
                f"edition {edition!r} is not on {info.describe()}; available: {_listing(images)}",
                hint="set osOpts.Windows.edition to one of these names, or osOpts.Windows.imageIndex",
            )
        chosen = matches[0]
        if len(matches) > 1:
            warnings.append(
                f"edition {edition!r} matches images {', '.join(str(m.index) for m in matches)}; "
                f"using {chosen.index} ({chosen.display_name or chosen.name})"
            )
        return chosen.index, chosen.name, warnings

    if len(candidates) == 1:
        return candidates[0].index, candidates[0].name, warnings
    if info.is_server:
        pick = next((img for img in candidates if _is_standard_desktop(img)), None)
        if pick is None:
            pick = candidates[0] if candidates else images[0]
            warnings.append(f"no Standard (Desktop Experience) image; using {pick.index} ({pick.name})")
        return pick.index, pick.name, warnings
    pick = next((img for img in candidates if _is_pro(img)), None)
    if pick is None:
        pick = candidates[0] if candidates else images[0]
        warnings.append(
            f"no Pro edition on {info.describe()}; using {pick.index} ({pick.name}); "
            f"set osOpts.Windows.edition to choose: {_listing(images)}"
        )
    return pick.index, pick.name, warnings


@dataclass(frozen=True)
class Selection:
    """The image an install ISO installs for a spec: decided here once, for `create` and for each boot."""

    index: int | None
    name: str | None
    is_server: bool
    info: MediaInfo | None
    warnings: tuple[str, ...]
    locale: winlocale.Locale = winlocale.DEFAULT


def select(iso: Path, spec: Spec) -> Selection:
    """Read the ISO's image list and choose the image `spec` asks for (osOpts.Windows edition/imageIndex), and
    the language Setup is answered in: the image's own (or osOpts.Windows.locale); none usable is an error."""
    info, warnings = inspect_iso_lenient(iso)
    index, name, more = choose_image(
        info, arch=spec.arch, edition=spec.windows.edition, image_index=spec.windows.image_index
    )
    if any("has no sources/install." in w for w in warnings):  # no image to install: not install media
        raise LimapyError(
            f"{iso} is not Windows install media: it has no sources/install.wim (nor install.esd or install.swm)",
            hint="point images[].location at a Windows 11 or Windows Server install ISO",
        )
    is_server = bool(info.is_server) if info is not None else False
    image = next((img for img in info.images if img.index == index), None) if info is not None else None
    locale = winlocale.choose(
        image.languages if image is not None else (),
        label=info.volume_label if info is not None else "",
        override=spec.windows.locale,
    )
    return Selection(index, name, is_server, info, (*warnings, *more), locale)


# --------------------------------------------------------------------------- server media


def _is_evaluation(img: WimImage) -> bool:
    return (img.edition_id or "").lower().endswith("eval") or any("evaluation" in n.lower() for n in img.names())


def check_server_media(info: MediaInfo | None, *, arch: str, index: int, product_key: str | None) -> list[str]:
    """Refuse what Windows Server media cannot do here; warnings for what cannot be told."""
    if info is None or not info.is_server:
        return []
    if arch == "aarch64":
        raise LimapyError(
            f"{info.describe()} is Windows Server, which limapy does not install on aarch64: virtio-win has no "
            "Server drivers for ARM64 (no 2k25\\ARM64), and Windows on arm64 needs them for its network",
            hint="install Windows Server on an x86_64 instance, or Windows 11 on arm64",
        )
    if product_key:
        return []
    chosen = next((img for img in info.images if img.index == index), None)
    if chosen is None:
        return [
            f"could not tell whether {info.describe()} is an evaluation edition: only evaluation media install "
            "without osOpts.Windows.productKey"
        ]
    if not _is_evaluation(chosen):
        raise LimapyError(
            f"image {index} of {info.describe()} ({chosen.display_name or chosen.name}) is not an evaluation "
            "edition: Setup needs a product key for it (only evaluation media install without one)",
            hint="set osOpts.Windows.productKey: XXXXX-XXXXX-XXXXX-XXXXX-XXXXX, or use the evaluation ISO "
            "(template:windows-2025 downloads it)",
        )
    return []
