"""Running the study on a cluster: the cost model (``plan``, ``cost-vs-plan``) and its
measured per-step figures."""
