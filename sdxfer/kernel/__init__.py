"""The kernel side: a probe's program assembled (schema header, BTF offsets,
-D flags), checked against this host, loaded (BCC), attached and read through
the shared-memory perf and ring buffer readers."""
