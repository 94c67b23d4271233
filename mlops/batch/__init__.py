"""Batch scoring: a model scores a whole dataset, partition by partition, in bounded memory.

`partitions` lists the input (any data URL training takes), names each partition's output and
says what became of it (`PartitionResult`), without pandas: a flow on a cluster reads no rows;
`reading` reads a partition in row batches; `arrow_input` hands a batch to the endpoint's
scoring core (`serving.scoring`) as a request would; `scorer` scores a batch and, when the
batch is refused, finds the rows that cannot be scored; `writing` writes a partition
atomically; `run` scores one partition end to end; `manifest` records a run. Plain Python, no
Prefect: flows/batch_scoring.py maps `run.score_partition` over the partitions.
"""
