"""The jinja2 environment for first-boot files, the escaping filters, and Lima's provision variables.

Templates live in each guest OS package's templates/ directory and are named `PACKAGE/FILE` (`linux/user-data`
is limapy/guest/linux/templates/user-data). StrictUndefined turns a missing variable into an error; templates
whose name ends in .xml are autoescaped. Filters for the other languages:

- ``yaml``: a string as a YAML double-quoted scalar (JSON string syntax, which YAML accepts);
- ``ps``: a string as an inert PowerShell expression (see ps_quote).
"""

from __future__ import annotations

import base64
import functools
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from limapy.base.errors import LimapyError

if TYPE_CHECKING:
    import jinja2

# PowerShell treats all of these as single quotes inside and around single-quoted strings.
_PS_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_PS_PRINTABLE = re.compile(r"[\x20-\x7e]*\Z")


def ps_quote(value: str) -> str:
    """A PowerShell expression whose value is exactly `value`, with nothing expanded.

    Printable ASCII becomes a single-quoted string with every quote doubled (no `$`, backtick or
    subexpression expansion happens inside single quotes). Anything else (non-ASCII, control
    characters, newlines) is carried as Base64 of its UTF-8 bytes and decoded at run time, so the
    generated script stays pure ASCII: Windows PowerShell 5.1 reads a BOM-less file in the ANSI code
    page, where UTF-8 continuation bytes 0x91/0x92 would turn into quote characters.
    """
    if _PS_PRINTABLE.fullmatch(value):
        escaped = "".join(c + c if c in _PS_SINGLE_QUOTES else c for c in value)
        return f"'{escaped}'"
    b64 = base64.b64encode(value.encode("utf-8")).decode("ascii")
    return f"([System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String('{b64}')))"


_YAML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def yaml_quote(value: Any) -> str:
    """A YAML double-quoted scalar holding str(value), in pure ASCII.

    YAML's own escapes, not JSON's: JSON writes a character outside the BMP (an emoji in a GECOS) as a
    surrogate pair `\\ud83d\\ude00`, which YAML parsers refuse; YAML has `\\UXXXXXXXX` for it."""
    out = ['"']
    for c in str(value):
        code = ord(c)
        if c in _YAML_ESCAPES:
            out.append(_YAML_ESCAPES[c])
        elif 0x20 <= code < 0x7F:
            out.append(c)
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\uFFFD")  # a lone surrogate is no character: the replacement character
        elif code <= 0xFF:
            out.append(f"\\x{code:02X}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04X}")
        else:
            out.append(f"\\U{code:08X}")
    out.append('"')
    return "".join(out)


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    import jinja2

    def load(name: str) -> tuple[str, str, Any]:
        path = _template_file(name)
        return path.read_text(encoding="utf-8"), str(path), lambda: True

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("xml",), default_for_string=False),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ps"] = ps_quote
    env.filters["yaml"] = yaml_quote
    return env


def render(template: str, /, **context: Any) -> str:
    try:
        return environment().get_template(template).render(**context)
    except Exception as e:
        import jinja2

        if isinstance(e, jinja2.TemplateError):
            raise LimapyError(f"internal error rendering {template}: {e}") from e
        raise


# --- Lima's template variables in provision scripts -------------------------------------------------

log = logging.getLogger("limapy.guest.render")

_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
_FIELD = re.compile(r"\s*\.(Name|Hostname|User|Home|UID|Param\.([A-Za-z_][A-Za-z0-9_]*))\s*\Z")


class _Unsupported(Exception):
    pass


def expand_vars(text: str, fields: Mapping[str, str], params: Mapping[str, str], *, where: str) -> str:
    """Expand `{{.Name}}`, `{{ .Param.KEY }}` etc. the way Lima's Go templates do for these forms.

    Supported: single-field actions (Name, Hostname, User, Home, UID, Param.KEY) with Go's `{{-` / `-}}`
    whitespace trimming. Like Lima, a text that does not expand cleanly (another action such as
    `{{if}}`, an unknown field, or a Param key that is not set) is kept unchanged as a whole, with a
    warning: shell scripts legitimately contain `{{` (docker --format '{{.State}}').
    """
    if "{{" not in text:
        return text
    try:
        return _expand(text, fields, params)
    except _Unsupported as e:
        log.warning("%s: not expanding template variables (%s); the text is used as is", where, e)
        return text


def _expand(text: str, fields: Mapping[str, str], params: Mapping[str, str]) -> str:
    out: list[str] = []
    pos = 0
    for m in _ACTION.finditer(text):
        trim_left, body, trim_right = m.group(1), m.group(2), m.group(3)
        # Go requires a space after "{{-" and before "-}}"; "{{-3}}" is the number -3, not trimming.
        if trim_left and not body[:1].isspace():
            body, trim_left = "-" + body, ""
        if trim_right and not body[-1:].isspace():
            body, trim_right = body + "-", ""
        before = text[pos : m.start()]
        out.append(before.rstrip(" \t\r\n") if trim_left else before)
        fm = _FIELD.fullmatch(body)
        if not fm:
            raise _Unsupported(f"unsupported action {m.group(0)!r}")
        key = fm.group(2)
        if key is not None:
            if key not in params:
                raise _Unsupported(f"`param.{key}` is not set")
            out.append(params[key])
        else:
            out.append(fields[fm.group(1)])
        pos = m.end()
        if trim_right:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
    out.append(text[pos:])
    return "".join(out)


def _template_file(name: str) -> Any:
    """`PACKAGE/FILE`: FILE in the templates directory of the guest OS package limapy.guest.PACKAGE."""
    from importlib.resources import files

    package, _, rest = name.partition("/")
    if not package.isidentifier() or not rest:
        raise LimapyError(f"internal error: no template {name!r}")
    return files(f"limapy.guest.{package}").joinpath("templates", *rest.split("/"))


def raw_template(name: str) -> str:
    """A file from a templates directory (`PACKAGE/FILE`), verbatim (shell scripts that are not rendered)."""
    return str(_template_file(name).read_text(encoding="utf-8"))
