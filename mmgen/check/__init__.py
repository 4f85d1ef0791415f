"""Checks of what the stages made, each behind a verb:

* :mod:`~mmgen.check.verify`: QA records against their scene graphs, by re-running each record's
  program (``mmgen verify``);
* :mod:`~mmgen.check.validate`: an exported training file before training on it (``mmgen validate``);
* :mod:`~mmgen.check.evaluate`: annotated scene graphs against reference ones (``mmgen eval-graphs``);
* :mod:`~mmgen.check.stats`: numbers and plots about an output folder (``mmgen stats``).
"""
