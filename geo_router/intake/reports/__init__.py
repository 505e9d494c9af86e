"""Report intake.

- :mod:`.models`: what callers send (``ReportInput``, ``ReportFilters``), pages and the
  report answer's encoder (``report_dict``);
- :mod:`.service`: ``ReportService`` (file with idempotency and screening, read, list,
  lifecycle, the privacy view);
- :mod:`.importer`: ``import_reports``, the bulk importer of historic reports.
"""
