"""A hello-world FastAPI app: the framework's ceiling for the service benchmarks."""
