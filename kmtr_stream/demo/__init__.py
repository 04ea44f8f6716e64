"""End-to-end demo: simulated scanner -> server running the k-MTR chain -> results."""
