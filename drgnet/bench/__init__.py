"""Benchmarks behind ``make bench`` / ``drgnet bench ...``.

Each one measures a baseline in the same run and reports ratios against it, because the machines are shared
and noisy: absolute seconds from different runs are not comparable.
"""
