"""The caller registry: subscribers (who a number belongs to, where they live) and CSV import."""

from geo_router.intake.subscribers.csv_import import ImportSummary, RowError
from geo_router.intake.subscribers.models import CallerInfo, Subscriber, SubscriberPage
from geo_router.intake.subscribers.service import UNSET, SubscriberService

__all__ = [
    "UNSET",
    "CallerInfo",
    "ImportSummary",
    "RowError",
    "Subscriber",
    "SubscriberPage",
    "SubscriberService",
]
