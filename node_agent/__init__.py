"""The per-host node agent: CPU topology, the core-affinity mailbox scheduler, its workers."""
