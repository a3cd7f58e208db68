"""Training and evaluation: the dual encoder, the reranker, their data, checkpoints and metrics.

Only the training commands import this room; the product (ingest, search, serve) never does.
"""
