"""Writes for the catalog, one module per topic: upserts from sources, syncs, installs, imports, curation."""
