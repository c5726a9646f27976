"""Gavel's benchmarks and reliability runs, run from the repository root as modules:
`python -m scripts.bench_bids`, `python -m scripts.soak`, ... They share `scripts.harness`
(server and notary processes, bidders, statistics, the machine, reports)."""
