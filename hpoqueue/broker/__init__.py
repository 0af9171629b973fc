"""The broker side: the embedded Redis, the Celery app, task messages, the events and keys that cross it."""
