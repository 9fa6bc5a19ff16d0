"""Running the study on a cluster: cost model (``plan``), checkpoint staging to node-local disk."""
