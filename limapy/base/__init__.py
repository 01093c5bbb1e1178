"""Base utilities every layer may use: error types and exit codes, where things live, atomic writes, Lima's
derived names, sizes and durations, every subprocess (proc), file stamps, whether a person is at the terminal,
ISO writing."""
