"""ct serve: the champion by alias over HTTP, a gated canary, shadow scoring, the prediction log.

app.py (HTTP layer) over pure parts: routing.py (arm per event id, which challenger may
serve), batching.py (micro-batches per model), models.py (slots and hot reload),
limits.py (request limits), scoring.py (one request's path), metrics.py (Prometheus),
prediction_log.py (rows and feedback into the landing zone).
"""
