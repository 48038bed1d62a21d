"""The server's Prometheus metrics, on a registry of its own (pure, no Dagster).

A ``CollectorRegistry`` per app rather than prometheus-client's global one: two apps in
one process (tests, or a reload of the module) would otherwise register the same names
twice and fail, and the global registry's process collectors are not ours to report.

Series (every name starts with ``ct_serve_``):
  predictions_total{arm,version}          texts answered, per arm and model version
  requests_total{arm,version}             /predict requests that had texts on that arm
  request_latency_seconds{arm,version}    request start to that arm's results (histogram)
  batch_size{version}                     texts per micro-batch (histogram)
  batch_latency_seconds{version}          model time per micro-batch (histogram)
  shadow_scorings_total{role,version,outcome}  off-path scorings: role shadow (the challenger
                                          behind the champion arm) or canary_baseline (the
                                          champion behind the canary arm); outcome ok|failed
  reloads_total{slot,outcome}             alias reads and model loads; outcome ok|failed
  loaded_version{slot}                    the version each slot serves (absent: none)
  log_flushes_total / log_files_written_total   prediction-log flushes that wrote files
  log_rows_total{outcome}                 rows handed to the prediction log: appended|refused
  log_pending_rows                        rows buffered, not yet in the landing zone
  http_requests_total{path,status}        every HTTP request, by route and status code
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds: a tiny model on a CPU answers in ~1 ms, a MiniLM batch on a CPU in ~50 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Texts: powers of two up to serving.max_batch's ceiling of interest.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
ROUTES = frozenset({"/predict", "/feedback", "/healthz", "/readyz", "/metrics"})


class ServingMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.predictions = Counter("ct_serve_predictions", "texts answered", ["arm", "version"], registry=r)
        self.requests = Counter("ct_serve_requests", "/predict requests with texts on the arm",
                                ["arm", "version"], registry=r)
        self.request_latency = Histogram("ct_serve_request_latency_seconds", "request start to the arm's results",
                                         ["arm", "version"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("ct_serve_batch_size", "texts per micro-batch", ["version"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_latency = Histogram("ct_serve_batch_latency_seconds", "model time per micro-batch",
                                       ["version"], buckets=LATENCY_BUCKETS, registry=r)
        self.shadow_scorings = Counter("ct_serve_shadow_scorings", "off-path scorings",
                                       ["role", "version", "outcome"], registry=r)
        self.reloads = Counter("ct_serve_reloads", "alias reads and model loads", ["slot", "outcome"], registry=r)
        self.loaded_version = Gauge("ct_serve_loaded_version", "version served per slot", ["slot"], registry=r)
        self.log_flushes = Counter("ct_serve_log_flushes", "prediction-log flushes that wrote files", registry=r)
        self.log_files = Counter("ct_serve_log_files_written", "landing files written or rewritten", registry=r)
        self.log_rows = Counter("ct_serve_log_rows", "rows handed to the prediction log", ["outcome"], registry=r)
        self.log_pending = Gauge("ct_serve_log_pending_rows", "rows buffered, not yet written", registry=r)
        self.http = Counter("ct_serve_http_requests", "HTTP requests", ["path", "status"], registry=r)

    def batch_observer(self, version: int) -> Callable[[int, float], None]:
        """The callback a model's MicroBatcher reports each batch to."""
        size, latency = self.batch_size.labels(version=str(version)), self.batch_latency.labels(version=str(version))

        def observe(texts: int, seconds: float) -> None:
            size.observe(texts)
            latency.observe(seconds)

        return observe

    def answered(self, arm: str, version: int, texts: int, seconds: float) -> None:
        labels = {"arm": arm, "version": str(version)}
        self.predictions.labels(**labels).inc(texts)
        self.requests.labels(**labels).inc()
        self.request_latency.labels(**labels).observe(seconds)

    def show_loaded(self, slot: str, version: int | None) -> None:
        if version is None:
            try:
                self.loaded_version.remove(slot)
            except KeyError:  # never set: nothing to remove
                pass
        else:
            self.loaded_version.labels(slot=slot).set(version)

    def flushed(self, files: int) -> None:
        if files:
            self.log_flushes.inc()
            self.log_files.inc(files)

    def http_request(self, path: str, status: int) -> None:
        # Unknown paths are folded into one series so a scanner cannot grow the label set.
        self.http.labels(path=path if path in ROUTES else "other", status=str(status)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
