"""limapy: a Python, Lima-compatible virtual machine manager.

Kept import-free on purpose: start-up time of the CLI is a feature.
"""

__version__ = "0.1.0"

#: The Lima release whose lima.yaml semantics limapy follows (checked against `minimumLimaVersion`).
LIMA_COMPAT_VERSION = "2.2.0"
