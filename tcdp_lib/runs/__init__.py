"""Runs: training, evaluation, benchmarks and reports built on the layers below."""
