"""OpenLineage: the events of a run (events), their parts (parts) and sending them (emit)."""
