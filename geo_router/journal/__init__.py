"""The local durable journal of work the database could not take (see ``journal.py``)."""

from geo_router.journal.journal import Cipher, Journal, JournalRecord, Replayer, ReplayResult
from geo_router.journal.replay_loop import ReplayLoop

__all__ = ["Cipher", "Journal", "JournalRecord", "ReplayLoop", "ReplayResult", "Replayer"]
