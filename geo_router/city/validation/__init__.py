"""The validation gate of zone layers: findings, report, coverage, nesting and careful repair.

One module per idea: :mod:`.findings` (codes, severities, thresholds), :mod:`.geometry`
(ids, projection, GeoJSON locations), :mod:`.topology` (overlaps, gaps), :mod:`.coverage`,
:mod:`.nesting`, :mod:`.repair`, :mod:`.report` and :mod:`.gate` (:func:`validate_layer`).
"""

from geo_router.city.validation.findings import (
    DEFAULT_MIN_AREA_M2,
    DEFAULT_NESTING_SHARE,
    ERROR,
    MAX_REPAIR_CHANGE,
    WARNING,
    Code,
    Finding,
    Thresholds,
)
from geo_router.city.validation.gate import validate_layer
from geo_router.city.validation.geometry import geometry_array, ids_as_str, to_utm
from geo_router.city.validation.nesting import Zones, nesting_findings
from geo_router.city.validation.repair import RepairRecord, repair_layer
from geo_router.city.validation.report import (
    Gap,
    InvalidFeature,
    NonPolygonFeature,
    Overlap,
    ValidationReport,
)

__all__ = [
    "DEFAULT_MIN_AREA_M2",
    "DEFAULT_NESTING_SHARE",
    "ERROR",
    "MAX_REPAIR_CHANGE",
    "WARNING",
    "Code",
    "Finding",
    "Gap",
    "InvalidFeature",
    "NonPolygonFeature",
    "Overlap",
    "RepairRecord",
    "Thresholds",
    "ValidationReport",
    "Zones",
    "geometry_array",
    "ids_as_str",
    "nesting_findings",
    "repair_layer",
    "to_utm",
    "validate_layer",
]
