"""ct_assets: continuous training for text classifiers as a Dagster asset graph."""

__version__ = "0.1.0"
