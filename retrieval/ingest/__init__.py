"""Ingest: scanning folders, planning an incremental run, reading, embedding and committing batches."""
