"""Repository data: datapoints in the Long Code Arena schema, mining, line categories, loaders."""

from .types import CATEGORIES, Datapoint

__all__ = ["CATEGORIES", "Datapoint"]
