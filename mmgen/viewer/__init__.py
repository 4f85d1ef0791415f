"""The local web viewer of an output folder (``mmgen view``): see :mod:`mmgen.viewer.server`."""
