"""The stages of the flow, one module per verb: each is a :class:`~mmgen.engine.Stage` (what one shard
does) run over shards by :func:`~mmgen.engine.run_stage`, reading its input folder and writing its own
through :mod:`mmgen.store`.

* :mod:`~mmgen.stages.annotate`: images -> scene graphs (``mmgen annotate``);
* :mod:`~mmgen.stages.import_graphs`: existing annotation files -> scene graphs (``mmgen import``);
* :mod:`~mmgen.stages.generate`: scene graphs -> QA records (``mmgen generate``);
* :mod:`~mmgen.stages.generate_multi`: sets of graphs -> multi-image QA records (``mmgen generate --multi``).
"""
