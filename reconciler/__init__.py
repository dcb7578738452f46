"""How desired and actual converge: the pure planner, the engine, and the ports to AWS with their adapters."""
