"""The benchmark of DESIGN section 7: our pipeline side by side with one Celery task per event.

`python -m bench.run` (or `make bench`) prints figures; it judges nothing. `bench.baseline` is the
one-task-per-event design, kept here for comparison only: the product never runs it.
"""
