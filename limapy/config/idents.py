"""The identifiers (instance and disk names) and checksum digests Lima accepts, with Lima's messages."""

from __future__ import annotations

import re
from typing import Any

from limapy.config.golang import go_q

IDENT_RE = re.compile(r"^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$")  # fullmatch only: shown as Lima shows it
DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)\Z")
DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


def validate_identifier(value: Any) -> str | None:
    if not isinstance(value, str) or value == "":
        return "identifier must not be empty"
    if len(value) > 76:  # pkg/identifiers/validate.go
        return f"identifier {go_q(value)} greater than maximum length (76 characters)"
    if not IDENT_RE.fullmatch(value):
        return f"identifier {go_q(value)} must match {IDENT_RE.pattern}"
    return None


def validate_digest(digest: Any) -> str | None:
    if digest in (None, ""):
        return None
    if not isinstance(digest, str) or ":" not in digest:
        return "invalid checksum digest format"
    algo, _, hexpart = digest.partition(":")
    if not DIGEST_RE.fullmatch(digest):
        return "invalid checksum digest format"
    if algo not in DIGEST_LENGTHS:
        return "unsupported digest algorithm"
    if len(hexpart) != DIGEST_LENGTHS[algo] or not re.fullmatch(r"[0-9a-f]+", hexpart):
        return f"invalid checksum digest format: {algo} needs {DIGEST_LENGTHS[algo]} lowercase hex digits"
    return None
