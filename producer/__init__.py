"""What agent workers import: publish execution events and track runs."""

from producer.publisher import Publisher
from producer.tracking import Run, track_execution

__all__ = ["Publisher", "Run", "track_execution"]
