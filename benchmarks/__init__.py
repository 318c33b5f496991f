"""Benchmarks of the training kernel against alternative implementations (see README.md)."""
