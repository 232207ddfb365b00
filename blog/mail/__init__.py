"""Mail: every message is first a row in the outbox (``models.py``), written in the same
transaction as the event that causes it (``outbox.py``), then delivered by a job through SMTP
or into ``.eml`` files, retried with backoff until it goes or is given up (``delivery.py``)."""
