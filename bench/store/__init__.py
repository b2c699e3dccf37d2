"""Run directories on disk: :mod:`bench.store.load` reads every results file resnet-bench
writes (and pytest-benchmark JSON); :mod:`bench.store.rundir` writes a run as it happens."""
