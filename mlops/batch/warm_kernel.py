"""Imported by a temporary Dask cluster's forkserver (`mlops.batch.cluster.FORKSERVER_PRELOAD`):
compiles HistGradientBoosting's tree kernel, or loads it from numba's cache (about 0.8 s of
CPU: LLVM starts), once, so every worker forked from it starts with the kernel ready instead of
loading it with its first partition. Importing this module anywhere else costs the same once.
"""

from serving.fastpath.compiled import warm

warm()
