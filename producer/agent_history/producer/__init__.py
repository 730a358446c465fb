"""What agent workers import: record execution events and track runs."""

from agent_history.contract.events import Cost, Usage
from agent_history.producer.publisher import Publisher
from agent_history.producer.settings import ProducerSettings
from agent_history.producer.spool import SpoolStats
from agent_history.producer.tracking import Run, track_execution

__all__ = [
    "Cost",
    "ProducerSettings",
    "Publisher",
    "Run",
    "SpoolStats",
    "Usage",
    "track_execution",
]
