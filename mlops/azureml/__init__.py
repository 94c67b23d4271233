"""Azure ML plumbing shared by the Azure ML backends (registry, endpoint, training).

Importing this package imports nothing from Azure. ``shipping`` (what gets uploaded) is plain
Python; ``client`` and ``entities`` import ``azure.ai.ml`` (about 5 s) at their top and are
imported only by ``mlops.registry.azureml``, ``mlops.endpoint.azureml`` and
``mlops.training.azureml``, which are imported only when a spec selects an 'azureml' backend.
"""
