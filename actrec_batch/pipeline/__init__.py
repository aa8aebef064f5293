"""The nightly inference pipeline: work units, feature cache, checkpoints, Ray fan-out, outputs.

* :mod:`~actrec_batch.pipeline.nightly`: the stage functions ``actrec run`` and the DAG call.
* :mod:`~actrec_batch.pipeline.job`: one date's inference (plan, resume, compute, assemble, write).
* :mod:`~actrec_batch.pipeline.ray_backend`: the only module that talks to Ray.
* :mod:`~actrec_batch.pipeline.work`: what runs on workers (index, decode, embed), Ray-free.
* :mod:`~actrec_batch.pipeline.cache`: the feature cache and the unit checkpoints.
* :mod:`~actrec_batch.pipeline.outputs`: the staged event table and publishing it.
"""
