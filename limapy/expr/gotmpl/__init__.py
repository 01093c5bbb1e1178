"""Go's text/template, the part Lima's templates and `limactl list --format` users write, over JSON-like data.

Lima renders provision scripts, mount locations, sockets, `message` and `list --format` with Go's text/template
(pkg/limayaml/defaults.go executeGuestTemplate/executeHostTemplate, pkg/store/instance.go), so limapy does too:

- text with actions `{{ PIPELINE }}`, `{{- ... -}}` trimming, `{{/* comments */}}`;
- `if`/`else if`/`else`, `with`, `range` (lists, maps in key order, integers; `$i, $v :=`, `break`, `continue`),
  variables (`$`, `$x := ...`, `$x = ...`), parenthesised pipelines, `|`;
- Go's functions `and or not len index eq ne lt le gt ge print printf println html urlquery`, and the ones a
  caller adds (`list --format` adds Lima's `json yaml indent missing`).

Go's semantics where they show: a key missing from a map is "no value" (printed `<no value>`, false in `if`),
a field of a string is an error, `eq` of a missing value and a string is false, maps print as `map[k:v]`.
`fold_case` treats the data as Go structs whose fields carry JSON names: `.CPUs` reaches the key `cpus` (case
ignored) and ranging over the top-level value is an error; `aliases` rename top-level fields (`.Networks` is
Lima's `network`). Without it the data are Go maps (Lima's templates): keys match exactly. Anything else
(`define`, `template`, `block`, other functions) is a TemplateError at parse time, as Go's parser reports an
undefined function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from limapy.expr.gotmpl.funcs import BUILTINS, FUNCS, LIMA_FUNCS
from limapy.expr.gotmpl.syntax import MISSING, NO_VALUE, Node, Parser, TemplateError, go_str, go_type, truth

__all__ = ["FUNCS", "LIMA_FUNCS", "MISSING", "NO_VALUE", "TemplateError", "check", "execute", "go_str", "parse",
           "render", "truth"]


# -- evaluation -------------------------------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    def __init__(self, root: Any, funcs: Mapping[str, Callable[..., Any]], aliases: Mapping[str, str],
                 fold_case: bool) -> None:  # fmt: skip
        self.root, self.funcs, self.aliases, self.fold = root, funcs, aliases, fold_case
        self.vars: list[dict[str, object]] = [{"$": root}]
        self.out: list[str] = []

    def field(self, value: Any, name: str) -> Any:
        if value is MISSING or value is None:
            return MISSING
        if not isinstance(value, Mapping):
            raise TemplateError(f"can't evaluate field {name} in type {go_type(value)}")
        if value is self.root and name in self.aliases and self.aliases[name] in value:
            return value[self.aliases[name]]
        if name in value:
            return value[name]
        if self.fold:
            want = name.lower()
            for k, v in value.items():
                if str(k).lower() == want:
                    return v
        return MISSING

    def lookup(self, name: str) -> Any:
        for scope in reversed(self.vars):
            if name in scope:
                return scope[name]
        raise TemplateError(f"undefined variable: {name}")

    def assign(self, name: str, value: Any) -> None:
        for scope in reversed(self.vars):
            if name in scope:
                scope[name] = value
                return
        raise TemplateError(f"undefined variable: {name}")

    def run(self, nodes: list[Node], dot: Any) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                self.out.append(node[1])
            elif kind == "action":
                pipe = node[1]
                value = self.pipe(pipe, dot)
                if not pipe[1]:  # a declaration prints nothing
                    self.out.append(go_str(value))
            elif kind in ("if", "with"):
                self.vars.append({})
                value = self.pipe(node[1], dot)
                if truth(value):
                    self.run(node[2], value if kind == "with" else dot)
                else:
                    self.run(node[3], dot)
                self.vars.pop()
            elif kind == "range":
                self.range(node, dot)
            elif kind == "break":
                raise _Break()
            elif kind == "continue":
                raise _Continue()

    def range(self, node: Node, dot: Any) -> None:
        _, pipe, body, other = node
        self.vars.append({})
        value = self.pipe(("pipe", [], "", pipe[3]), dot)
        if value is self.root and self.fold:  # `fold_case` data is a Go struct (FormatData): not a map to range
            raise TemplateError("range can't iterate over the instance (a struct)")
        if isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value, key=str)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is MISSING or value is None:
            items = []
        else:
            raise TemplateError(f"range can't iterate over {go_str(value)}")
        for key, item in items:
            decl = pipe[1]
            if len(decl) == 1:
                self.vars[-1][decl[0]] = item
            elif len(decl) == 2:
                self.vars[-1][decl[0]], self.vars[-1][decl[1]] = key, item
            try:
                self.run(body, item)
            except _Continue:
                continue
            except _Break:
                break
        if not items:
            self.run(other, dot)
        self.vars.pop()

    def pipe(self, pipe: Node, dot: Any) -> Any:
        _, decl, op, cmds = pipe
        value: Any = MISSING
        for i, cmd in enumerate(cmds):
            value = self.command(cmd, dot, [value] if i else [])
        if op == ":=":
            self.vars[-1][decl[0]] = value
        elif op == "=":
            self.assign(decl[0], value)
        return value

    def command(self, cmd: list[Node], dot: Any, piped: list[Any]) -> Any:
        head = cmd[0]
        if head[0] == "func":
            name = head[1]
            operands: list[Node] = [*cmd[1:], *(("lit", v) for v in piped)]
            if name in ("and", "or"):  # evaluated lazily: the first false (and) or true (or) operand wins
                if not operands:
                    raise TemplateError(f"wrong number of args for {name}: want at least 1 got 0")
                result: Any = MISSING
                for operand in operands:
                    result = self.arg(operand, dot)
                    if truth(result) != (name == "and"):
                        return result
                return result
            values = [self.arg(operand, dot) for operand in operands]
            try:
                return self.funcs[name](*values)
            except TemplateError as e:
                raise TemplateError(f"error calling {name}: {e}") from None
            except TypeError:
                raise TemplateError(f"wrong number of args for {name}: got {len(values)}") from None
        if len(cmd) > 1 or piped:
            raise TemplateError("can't give argument to non-function")
        return self.arg(head, dot)

    def arg(self, node: Node, dot: Any) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "field":
            value = dot
            for name in node[1]:
                value = self.field(value, name)
            return value
        if kind == "var":
            value = self.lookup(node[1])
            for name in node[2]:
                value = self.field(value, name)
            return value
        if kind == "sub":
            return self.pipe(node[1], dot)
        if kind == "chain":
            value = self.pipe(node[1], dot)
            for name in node[2]:
                value = self.field(value, name)
            return value
        if kind == "func":
            return self.command([node], dot, [])
        raise TemplateError(f"unexpected {node!r}")


def parse(template: str, funcs: Mapping[str, Callable[..., Any]] | None = None) -> list[Node]:
    """The template's tree; a TemplateError for what Go's parser would refuse (or limapy does not support)."""
    return Parser(template, {**BUILTINS, **(funcs or {})}).parse()


def render(
    template: str,
    data: Any,
    aliases: Mapping[str, str] | None = None,
    *,
    funcs: Mapping[str, Callable[..., Any]] | None = None,
    fold_case: bool = True,
) -> str:
    """`template` applied to `data`; a TemplateError for a template Go would refuse or fail to execute."""
    all_funcs = {**BUILTINS, **(LIMA_FUNCS if funcs is None else funcs)}
    tree = Parser(template, all_funcs).parse()
    state = _State(data, all_funcs, aliases or {}, fold_case)
    try:
        state.run(tree, data)
    except RecursionError:
        raise TemplateError("template nests too deeply") from None
    return "".join(state.out)


def execute(template: str, data: Mapping[str, Any]) -> str:
    """Lima's executeGuestTemplate/executeHostTemplate: Go's builtins only, exact map keys."""
    return render(template, data, funcs={}, fold_case=False)


def check(template: str, sample: Any = None, aliases: Mapping[str, str] | None = None) -> None:
    """Raise TemplateError now for a template Go's parser would refuse (before anything is printed); what
    depends on the data (a field of a string) fails when it runs, as in Go."""
    parse(template, LIMA_FUNCS)
