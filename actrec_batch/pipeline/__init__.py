"""The nightly inference pipeline: work units, feature cache, checkpoints, runners, outputs.

* :mod:`~actrec_batch.pipeline.nightly`: the stage functions ``actrec run`` and the DAG call.
* :mod:`~actrec_batch.pipeline.job`: one run's inference (:class:`~actrec_batch.pipeline.spec.RunSpec`),
  as the stages of :mod:`~actrec_batch.pipeline.stages`: plan, decode, embed, assemble, write.
* :mod:`~actrec_batch.pipeline.runners`: the local runner (this process) and the runner interface;
  :mod:`~actrec_batch.pipeline.runner_ray`: the Ray runner, with :mod:`~actrec_batch.pipeline.scheduler`
  (Ray-free, typed messages of :mod:`~actrec_batch.pipeline.messages`).
* :mod:`~actrec_batch.pipeline.ray_backend`: the only module that talks to Ray.
* :mod:`~actrec_batch.pipeline.work`: what runs on workers (index, decode, embed), Ray-free.
* :mod:`~actrec_batch.pipeline.cache`: the feature cache and the unit checkpoints.
* :mod:`~actrec_batch.pipeline.outputs`: the staged event table and publishing it.
"""
