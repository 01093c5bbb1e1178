"""The instance store: instance directories and every instance file name (store), disk images (disk), cached
summaries (summary), trusted pid files (pids), limapy's SSH key (userkey)."""
