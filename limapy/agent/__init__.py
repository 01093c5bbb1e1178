"""The host agent: the per-instance supervisor that owns a running machine (hostagent)."""
