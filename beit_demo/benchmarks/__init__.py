"""Helpers of the benchmark (`python -m beit_demo bench`, see `beit_demo.bench`): a clock that notices neighbours,
server processes, and the measurements that run in fresh child processes."""
