"""axon-dagster: robot data-collection orchestration.

Importing this package is cheap on purpose: the edge agent imports the domain and recorder
clients from here and must never pull in Dagster, Ray or Daft.
"""

__version__ = "0.1.0"
