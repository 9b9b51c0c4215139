"""Runtime backends: one module per runtime behind the `Backend` interface (see `base`)."""

from posebench.runtimes.base import CPU_RUNTIMES, REGISTRY, Backend, backend_class, create_backend, parse_runtimes

__all__ = ["CPU_RUNTIMES", "REGISTRY", "Backend", "backend_class", "create_backend", "parse_runtimes"]
