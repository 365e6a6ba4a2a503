"""Control flow: an order entered in the launchpad becomes batches and tasks on robots; the asset
lineage order -> batch -> task -> dataset -> inspection report -> cloud dataset."""

import dagster as dg

from ..lineage import LINEAGE_SPECS
from .orders import order_processing

defs = dg.Definitions(assets=LINEAGE_SPECS, jobs=[order_processing])

__all__ = ["defs", "order_processing"]
