"""The small languages users type on the command line: `--set` edits and Lima's shortcut flags (edits,
editflags), `--yq`/`--filter` (yqlite), `--format` Go templates (gotmpl), `--preserve-env` patterns
(shellenv)."""
