"""Pieces shared by the test suite (tests/) and the benchmarks (bench/): free ports,
child-process lifetime, redis-server and Sentinel, the daemon runner, HTTP receivers,
waiting on a condition and percentiles. Nothing here imports the ``scheduler`` package."""
