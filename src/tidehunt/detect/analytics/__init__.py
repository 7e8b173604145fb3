"""Analytics: SQL detections over whole tables, one module each (see ``base``)."""
