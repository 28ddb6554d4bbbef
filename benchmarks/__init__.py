"""Side-by-side benchmarks (not tests): `make bench` or `python -m benchmarks [name ...]`."""
