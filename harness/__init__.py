"""Pieces shared by the test suite (tests/) and the benchmarks (bench/): free ports,
child-process lifetime and percentiles. Nothing here imports the ``scheduler`` package."""
