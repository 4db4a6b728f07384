"""The benchmark: our pipeline side by side with one Celery task
per event, on streams shaped like real traffic.

`clinia-ingest bench` (or `python -m bench`, or `make bench`) prints figures and a line per
target; it judges nothing in its exit status. Modules: `cli` (options), `benchmark` (the runs in
order), `runs` and `designs` (one measured window, the same for both designs), `shapes` and
`world` (the streams), `stream` (the one-by-one oracle), `chain`, `latency`, `memory_runs`,
`procstat`, `memory`, `redis_probe`, `consuming`, `stack` (the processes), `targets`, `report`
and `report_json`. `baseline` is the one-task-per-event design, kept here for comparison only:
the product never runs it.
"""
