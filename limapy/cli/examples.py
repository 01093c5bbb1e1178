"""Every command's examples, and its other names, as limactl's help shows them ("Aliases:", "Examples:").

`apply` gives each command of the typer app an epilog: its hidden aliases (found in the app: the commands
that run the same function) and its examples from EXAMPLES, unless the command wrote its own with
`_util.doc`. tests/unit/test_cli_help.py requires examples for every visible command.
"""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, tuple[str, ...]] = {
    "create": ("limapy create", "limapy create --name dev --cpus 4 --memory 8 template:debian",
               "limapy create --mount ~/src:w --port-forward 8080:80 ./lima.yaml", "limapy create --list-templates"),
    "start": ("limapy start", "limapy start template:debian",
              "limapy start --name win templates/experimental/windows.yaml", "limapy start --dry-run web",
              "limapy start web --cpus 4"),
    "suspend": ("limapy suspend web", "limapy start web   # resumes it"),
    "delete": ("limapy delete web", "limapy delete -f web db"),
    "list": ("limapy list", "limapy list --json", "limapy ls --format '{{.Name}} {{.Status}}'",
             "limapy list -l '.cpus >= 2' -q"),
    "shell": ("limapy shell web", "limapy shell web uname -a", "limapy shell --workdir /tmp web ls",
              "limapy shell --start web   # starts it first when stopped", "LIMAPY_INSTANCE=web limapy shell"),
    "copy": ("limapy copy ./file web:/tmp/", "limapy cp -r web:/etc/ ./etc"),
    "rdp": ("limapy rdp windows", "limapy rdp --print windows"),
    "validate": ("limapy validate lima.yaml", "limapy validate --fill template:debian",
                 "cat lima.yaml | limapy validate -"),
    "info": ("limapy info", "limapy info web"),
    "screenshot": ("limapy screenshot windows -o shot.png",),
    "restart": ("limapy restart", "limapy restart -f web"),
    "edit": ("limapy edit web --cpus 4 --memory 8", "limapy edit web --set '.mounts = []' --start", "limapy edit web"),
    "clone": ("limapy clone web web2", "limapy clone --full web web2"),
    "rename": ("limapy rename web2 work",),
    "factory-reset": ("limapy factory-reset", "limapy factory-reset web"),
    "protect": ("limapy protect web",),
    "unprotect": ("limapy unprotect web",),
    "show-ssh": ("limapy show-ssh web", "limapy show-ssh -f config web >> ~/.ssh/config"),
    "tunnel": ("limapy tunnel web", "limapy tunnel --socks-port 1080 web"),
    "prune": ("limapy prune", "limapy prune --keep-referred"),
    "completion": ("source <(limapy completion bash)", "limapy completion zsh > \"${fpath[1]}/_limapy\"",
                   "limapy completion fish > ~/.config/fish/completions/limapy.fish"),
    "help": ("limapy help", "limapy help start", "limapy help snapshot create"),
    "snapshot": ("limapy snapshot create web --tag clean", "limapy snapshot list web"),
    "snapshot create": ("limapy snapshot create web --tag clean",),
    "snapshot apply": ("limapy snapshot apply web --tag clean",),
    "snapshot delete": ("limapy snapshot delete web --tag clean",),
    "snapshot list": ("limapy snapshot list web", "limapy snapshot ls -q web"),
    "disk": ("limapy disk create data --size 10GiB", "limapy disk list"),
    "disk create": ("limapy disk create data --size 10GiB", "limapy disk create scratch --size 2G --format raw"),
    "disk list": ("limapy disk list", "limapy disk ls --json"),
    "disk delete": ("limapy disk delete data",),
    "disk unlock": ("limapy disk unlock data",),
    "disk resize": ("limapy disk resize data --size 20GiB",),
    "disk import": ("limapy disk import data ./data.qcow2",),
    "template": ("limapy template copy template:debian ./my.yaml", "limapy template yq template:debian .cpus"),
    "template copy": ("limapy template copy template:debian ./my.yaml",
                      "limapy template copy --fill template:debian -"),
    "template validate": ("limapy template validate ./my.yaml",),
    "template yq": ("limapy template yq template:debian '.images[0].location'",
                    "limapy template yq template:debian '.cpus = 4'"),
    "template url": ("limapy template url template:debian",),
    "windows": ("limapy windows answer-iso --arch amd64 -o answer.iso",),
}  # fmt: skip


def _key(cmd: Any) -> object:
    """What makes two entries of a group the same command: the function they run (typer wraps it anew for each
    name: the wrapped one), for a group its commands' functions."""
    if hasattr(cmd, "commands"):
        return tuple(sorted(str(_key(c)) for c in cmd.commands.values()))
    callback = getattr(cmd, "callback", None)
    return getattr(callback, "__wrapped__", callback)


def aliases(group: Any) -> dict[str, list[str]]:
    """{visible name: its hidden names} among `group`'s commands (`list`: `ls`; `delete`: `remove`, `rm`)."""
    out: dict[str, list[str]] = {}
    visible = {name: _key(cmd) for name, cmd in group.commands.items() if not getattr(cmd, "hidden", False)}
    for name, cmd in group.commands.items():
        if getattr(cmd, "hidden", False):
            owner = next((v for v, k in visible.items() if k == _key(cmd) and k not in (None, ())), None)
            if owner is not None:
                out.setdefault(owner, []).append(name)
    return out


def apply(group: Any, path: tuple[str, ...] = ()) -> None:
    """Give every command under `group` its aliases and examples (an epilog it set itself is kept)."""
    others = aliases(group)
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            apply(cmd, (*path, name))
        if getattr(cmd, "hidden", False):
            continue
        key = " ".join((*path, name))
        parts = []
        if others.get(name):
            parts.append("Aliases: " + ", ".join(others[name]))
        if cmd.epilog:
            parts.append(cmd.epilog)
        elif EXAMPLES.get(key):
            parts.append("\b\nExamples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[key]))
        cmd.epilog = "\n\n".join(parts) or None
