"""Benchmarks (issue 5): `python -m bench.run_all [--tiny] [--out bench/results]`.

Every headline figure is a ratio against a peer measured in the same run on the same
machine, so numbers from different machines are never compared directly. Each measured
path runs in its own subprocess: peak RSS is per process, and imports, caches (the GX
context, the base-hash cache) and allocator state must not leak from one path into the
other.
"""
