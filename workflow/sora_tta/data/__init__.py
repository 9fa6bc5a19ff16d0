"""UCF-101 ingestion: split lists, selection, captions, probing and preprocessing."""
