"""`limapy yq` and the guest's `mode: yq` applier: yq's command line over limapy's yq subset.

    yq [eval|e] [-i] [-n] [-p FORMAT] [-o FORMAT] [-I N] [-r=false] [-e] [--from-file F | EXPR] [FILE...]

The flags are yq v4's (the ones Lima's boot.sh passes: `--inplace --from-file F --input-format X --output-format
X PATH`, and `--null-input --from-file F --output-format X` to create a file). `limactl yq` is yq itself; this
is limapy's subset (limapy.expr.yqlite) with yq's flags, exit status 1 on any error, and YAML/JSON/INI files
(limapy.expr.yqformats). The same code runs in the guest: boot.sh runs `util/limapy-yq` from the seed with the
guest's Python (cloud-init's), as Lima runs `lima-guestagent yq`. An in-place edit keeps the file's mode and
owner (yq writes a temp file beside it and renames it). Runs on Python 3.7.
"""

from __future__ import annotations

import os
import sys

from limapy.expr import yqformats, yqlite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

USAGE = """\
Usage: limapy yq [eval|e] [FLAGS] [EXPRESSION] [FILE...]

limapy's yq: yq v4's command line over limapy's safe yq subset (paths, =, |=, +=, del, select, ...;
nothing that reads files or the environment). Formats: yaml, json, ini.

Flags:
  -i, --inplace               update the first file in place
  -n, --null-input            do not read input (start from null)
      --from-file FILE        read the expression from FILE
  -p, --input-format FORMAT   auto (by extension), yaml, json, ini (default auto)
  -o, --output-format FORMAT  auto (the input's), yaml, json, ini (default auto)
  -I, --indent N              indentation (default 2)
  -r, --unwrapScalar[=BOOL]   print scalar strings without quotes (default true)
  -e, --exit-status           exit 1 when the last result is null or false
  -M, -C, -P, -N              accepted, no effect (colours, pretty print, no document separator)
  -h, --help                  this text
"""


class UsageFault(ValueError):
    pass


class Options:
    __slots__ = ("exit_status", "expr", "files", "from_file", "in_fmt", "indent", "inplace", "null_input",
                 "out_fmt", "unwrap")  # fmt: skip

    def __init__(self) -> None:
        self.inplace = self.null_input = self.exit_status = False
        self.from_file: str | None = None
        self.expr: str | None = None
        self.files: list[str] = []
        self.in_fmt = self.out_fmt = "auto"
        self.indent = 2
        self.unwrap = True


_VALUED = {"--from-file": "from_file", "-p": "in_fmt", "--input-format": "in_fmt", "-o": "out_fmt",
           "--output-format": "out_fmt", "-I": "indent", "--indent": "indent"}  # fmt: skip
_BOOL = {"-i": "inplace", "--inplace": "inplace", "-n": "null_input", "--null-input": "null_input",
         "-e": "exit_status", "--exit-status": "exit_status", "-r": "unwrap", "--unwrapScalar": "unwrap"}  # fmt: skip
_IGNORED = ("-M", "--no-colors", "-C", "--colors", "-P", "--prettyPrint", "-N", "--no-doc")


def parse(argv: list[str]) -> Options:
    opts = Options()
    args = list(argv)
    if args and args[0] in ("eval", "e"):
        args = args[1:]
    positional: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            positional += args[i:]
            break
        if not a.startswith("-") or a == "-":
            positional.append(a)
            continue
        key, eq, value = a.partition("=")
        if key in _VALUED:
            if not eq:
                if i >= len(args):
                    raise UsageFault(f"{key} needs a value")
                value, i = args[i], i + 1
            if _VALUED[key] == "indent":
                if not value.isdigit():
                    raise UsageFault("--indent takes a number")
                opts.indent = int(value)
            else:
                setattr(opts, _VALUED[key], value)
        elif key in _BOOL:
            flag = value.lower() not in ("false", "0", "no") if eq else True
            setattr(opts, _BOOL[key], flag)
        elif a in _IGNORED:
            continue
        elif len(a) > 2 and a[1] != "-" and all("-" + c in _BOOL or "-" + c in _IGNORED for c in a[1:]):
            for c in a[1:]:
                if "-" + c in _BOOL:
                    setattr(opts, _BOOL["-" + c], True)
        else:
            raise UsageFault(f"unknown flag {a} (limapy's yq takes: -i -n -p -o -I -r -e --from-file)")
    if opts.from_file is None:
        if not positional:
            raise UsageFault("no expression given")
        opts.expr = positional.pop(0)
    opts.files = positional
    if opts.inplace and not opts.files:
        raise UsageFault("--inplace needs a file")
    return opts


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write_in_place(path: str, text: str) -> None:
    """Replace `path`'s contents, keeping its mode and (when we may) its owner, through a renamed temp file."""
    st = os.stat(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.limapy-yq.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, st.st_mode & 0o7777)
        if hasattr(os, "chown") and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except PermissionError:
                pass
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(opts: Options, out: TextIO) -> int:
    expr = _read(opts.from_file) if opts.from_file is not None else str(opts.expr)
    node = yqlite.parse(expr)
    first = opts.files[0] if opts.files else None
    in_fmt = yqformats.resolve(opts.in_fmt, first)
    out_fmt = in_fmt if opts.out_fmt in ("auto", "a") else yqformats.resolve(opts.out_fmt, first)
    docs: list[Any] = [None] if opts.null_input else []
    if not opts.null_input:
        for name in opts.files or ["-"]:
            docs += yqformats.load_all(_read(name), in_fmt)
    chunks: list[str] = []
    last: Any = None
    for n, doc in enumerate(docs):
        results = yqlite.run_node(node, doc)
        if n and out_fmt == "yaml" and results:
            chunks.append("---\n")
        for r in results:
            chunks.append(yqformats.dump(r, out_fmt, indent=opts.indent, unwrap=opts.unwrap))
            last = r
    text = "".join(chunks)
    if opts.inplace:
        _write_in_place(str(first), text)
    else:
        out.write(text)
    return 1 if opts.exit_status and not yqlite.truthy(last) else 0


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """yq's exit status: 0, or 1 with one `yq:` line on stderr (yq prints `Error: ...`)."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args[:1] + [a for a in args if a.startswith("-")]):
        out.write(USAGE)
        return 0
    try:
        return run(parse(args), out)
    except (UsageFault, yqlite.YqError, yqformats.FormatError) as e:
        err.write(f"Error: {e}\n")
    except OSError as e:
        err.write("Error: {}: {}\n".format(getattr(e, "filename", None) or "", e.strerror or e))
    except UnicodeDecodeError:
        err.write("Error: the input is not UTF-8 text\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
