"""The broker side: the typed Redis client, the embedded Redis, the Celery app, task messages, and the keys,
events and control commands that cross it."""
