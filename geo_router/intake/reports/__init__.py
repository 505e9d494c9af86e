"""Report intake: inputs and views (models), the service, the bulk importer of history."""

from geo_router.intake.reports.importer import ImportSummary, import_reports
from geo_router.intake.reports.models import (
    MAX_PAGE,
    TRANSITIONS,
    Actor,
    Page,
    Report,
    ReportFilters,
    ReportInput,
    ServiceActor,
    StatusChange,
    report_dict,
)
from geo_router.intake.reports.service import FiledReport, ReportService

__all__ = [
    "MAX_PAGE",
    "TRANSITIONS",
    "Actor",
    "FiledReport",
    "ImportSummary",
    "Page",
    "Report",
    "ReportFilters",
    "ReportInput",
    "ReportService",
    "ServiceActor",
    "StatusChange",
    "import_reports",
    "report_dict",
]
