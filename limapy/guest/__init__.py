"""What the host agent does in a running Linux guest beyond booting it: host folders (mounts) and
automatic port forwards, over its SSH connection to the guest."""
