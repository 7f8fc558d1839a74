"""Turn each source's payloads into `UpstreamItem`s: one neutral shape the upsert service understands."""
