"""The file formats limapy's yq reads and writes: YAML, JSON and INI (what Lima's templates edit).

YAML goes through ruamel.yaml in round-trip mode when it is there (the host: comments and order kept) and
PyYAML otherwise (a guest, where cloud-init brings it: comments are not kept). INI is yq's reading of it
(pkg/yqlib/decoder_ini.go, encoder_ini.go): keys before the first section at the top level, each section a
map of strings; written back as go-ini writes it (`key = value`, `=` aligned, a blank line between sections).
yq's other formats (toml, xml, csv, tsv, properties, ...) are refused with the reason. Runs on Python 3.7.
"""

from __future__ import annotations

import io
import json
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMATS = ("yaml", "json", "ini")
ALIASES = {"y": "yaml", "yml": "yaml", "j": "json", "i": "ini", "a": "auto"}
#: File types by extension, as Lima's boot.sh names them (cidata.TEMPLATE.d/boot.sh, `format: auto`).
EXTENSIONS = {".csv": "csv", ".ini": "ini", ".json": "json", ".properties": "props", ".toml": "toml",
              ".tsv": "tsv", ".xml": "xml", ".yaml": "yaml", ".yml": "yaml"}  # fmt: skip


class FormatError(ValueError):
    pass


def by_extension(path: str) -> str | None:
    """The format a file name implies, None when it implies none (then yq and Lima use yaml)."""
    m = re.search(r"\.[^./]+$", path)
    return EXTENSIONS.get(m.group(0).lower()) if m else None


def resolve(fmt: str, path: str | None) -> str:
    """`auto` (and yq's short names) as a concrete, supported format."""
    fmt = ALIASES.get(fmt, fmt)
    if fmt == "auto":
        fmt = (by_extension(path) if path else None) or "yaml"
    if fmt not in FORMATS:
        raise FormatError("format `{}` is not supported by limapy's yq (it reads and writes {})".format(
            fmt, ", ".join(FORMATS)))  # fmt: skip
    return fmt


# -- YAML ---------------------------------------------------------------------------------------------------


def _ruamel() -> Any:
    try:
        from ruamel.yaml import YAML
    except ImportError:
        return None
    yaml = YAML()  # round trip: comments, order and quoting survive an edit
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def yaml_load_all(text: str) -> list[Any]:
    rt = _ruamel()
    if rt is not None:
        return list(rt.load_all(text)) or [None]
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        raise FormatError("reading YAML needs ruamel.yaml or PyYAML, and neither is installed") from None
    return list(yaml.safe_load_all(text)) or [None]


def yaml_dump(value: Any, indent: int = 2) -> str:
    rt = _ruamel()
    if rt is not None:
        rt.indent(mapping=indent, sequence=indent + 2, offset=indent)
        buf = io.StringIO()
        rt.dump(value, buf)
        text = buf.getvalue()
        return text[:-4] + "\n" if text.endswith("\n...\n") else text
    import yaml

    try:
        out: str = yaml.safe_dump(value, default_flow_style=False, allow_unicode=True, sort_keys=False, indent=indent)
    except TypeError:  # PyYAML before 5.1 has no sort_keys
        out = yaml.safe_dump(value, default_flow_style=False, allow_unicode=True, indent=indent)
    return out[:-4] if out.endswith("\n...\n") else out


# -- INI ----------------------------------------------------------------------------------------------------

_SECTION = re.compile(r"^\s*\[([^\]]*)\]\s*$")


def _ini_value(raw: str) -> str:
    v = raw.strip()
    for q in ('"""', "`", '"'):
        if len(v) >= 2 * len(q) and v.startswith(q) and v.endswith(q):
            return v[len(q) : -len(q)]
    m = re.search(r"\s[#;]", v)  # an inline comment needs a blank before it (go-ini)
    return v[: m.start()].rstrip() if m else v


def ini_load(text: str) -> dict[str, object]:
    root: dict[str, object] = {}
    section = root
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        m = _SECTION.match(line)
        if m:
            name = m.group(1).strip()
            if name.upper() == "DEFAULT":
                section = root
            else:
                existing = root.get(name)
                section = existing if isinstance(existing, dict) else {}
                root[name] = section
            continue
        key, sep, value = _split_kv(stripped)
        if not sep:
            raise FormatError(f"INI line {n}: expected KEY = VALUE, got {stripped[:40]!r}")
        section[key] = _ini_value(value)
    return root


def _split_kv(line: str) -> tuple[str, str, str]:
    for i, c in enumerate(line):
        if c in "=:":
            return line[:i].strip().strip("`\""), c, line[i + 1 :]
    return line, "", ""


def _ini_scalar(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _ini_write(value: str) -> str:
    if "\n" in value or "`" in value:
        return '"""' + value + '"""'
    if "#" in value or ";" in value:
        return "`" + value + "`"
    return '"' + value + '"' if value.strip() != value else value


def _ini_lines(pairs: list[tuple[str, Any]]) -> list[str]:
    width = max((len(k) for k, _ in pairs), default=0)
    return [k.ljust(width) + " = " + _ini_write(_ini_scalar(v)) for k, v in pairs]


def ini_dump(value: Any) -> str:
    if not isinstance(value, dict):
        if value is None or isinstance(value, (str, int, float, bool)):
            return _ini_scalar(value) + "\n"
        raise FormatError(f"INI holds a map at the top, not a {type(value).__name__}")
    top = [(str(k), v) for k, v in value.items() if not isinstance(v, (dict, list))]
    blocks = []
    if top:
        blocks.append("\n".join(_ini_lines(top)) + "\n")
    for name, body in value.items():
        if isinstance(body, dict):
            pairs = [(str(k), v) for k, v in body.items() if not isinstance(v, (dict, list))]
            blocks.append("\n".join([f"[{name}]", *_ini_lines(pairs)]) + "\n")
    return "\n".join(blocks)


# -- the codec ----------------------------------------------------------------------------------------------


def load_all(text: str, fmt: str) -> list[Any]:
    """The documents of `text` (one for JSON and INI)."""
    try:
        if fmt == "yaml":
            return yaml_load_all(text)
        if fmt == "json":
            return [json.loads(text) if text.strip() else None]
        if fmt == "ini":
            return [ini_load(text)]
    except FormatError:
        raise
    except Exception as e:  # the parsers' own errors (YAMLError, JSONDecodeError, ...)
        raise FormatError(f"cannot read the {fmt} input: {str(e).splitlines()[0] if str(e) else e}") from None
    raise FormatError(f"format `{fmt}` is not supported")


def dump(value: Any, fmt: str, *, indent: int = 2, unwrap: bool = True) -> str:
    """One result as yq prints it: a scalar raw (unless `unwrap` is off), anything else in `fmt`."""
    if fmt == "ini":
        return ini_dump(value)
    if fmt == "json":
        if unwrap is False or not isinstance(value, str):
            if indent == 0:
                return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
            return json.dumps(value, ensure_ascii=False, indent=indent, default=str) + "\n"
        return value + "\n"
    if isinstance(value, str) and unwrap:
        return value + "\n"
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value) + "\n"
    return yaml_dump(value, indent)
