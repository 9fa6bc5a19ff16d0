"""Per-video metrics, aggregation, statistics and figures."""
