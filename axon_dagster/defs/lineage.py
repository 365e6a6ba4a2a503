"""The asset graph of one order: order -> batch -> task -> dataset -> inspection report -> cloud dataset.

Per-task state lives in the control plane; Dagster sees these assets partitioned by order (bounded:
orders are few, tasks are many), and every materialization carries the ids and labels of its level.
"""

from __future__ import annotations

import dagster as dg

ORDERS = dg.DynamicPartitionsDefinition(name="orders")

ORDER = dg.AssetKey("order")
BATCH = dg.AssetKey("batch")
TASK = dg.AssetKey("task")
DATASET = dg.AssetKey("dataset")
INSPECTION_REPORT = dg.AssetKey("inspection_report")
CLOUD_DATASET = dg.AssetKey("cloud_dataset")
QC_CHECK = "qc_inspection"

_GROUP = "axon"

LINEAGE_SPECS = [
    dg.AssetSpec(ORDER, partitions_def=ORDERS, group_name=_GROUP, description="A data-collection order (scene, skills, requirements)."),
    dg.AssetSpec(BATCH, deps=[ORDER], partitions_def=ORDERS, group_name=_GROUP, description="Batches planned from an order."),
    dg.AssetSpec(TASK, deps=[BATCH], partitions_def=ORDERS, group_name=_GROUP, description="Tasks dispatched to robots."),
    dg.AssetSpec(DATASET, deps=[TASK], partitions_def=ORDERS, group_name=_GROUP, description="A recording staged in the edge cache."),
    dg.AssetSpec(
        INSPECTION_REPORT, deps=[DATASET], partitions_def=ORDERS, group_name=_GROUP, description="QC report stored beside the dataset."
    ),
    dg.AssetSpec(
        CLOUD_DATASET,
        deps=[INSPECTION_REPORT],
        partitions_def=ORDERS,
        group_name=_GROUP,
        description="The verified cloud copy: {scene}/{sub_scene}/{skills}_{timestamp}.lance.",
    ),
]


def materialization(key: dg.AssetKey, order_id: str, metadata: dict) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(asset_key=key, partition=order_id, metadata=metadata)
