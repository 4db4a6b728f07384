"""The pure core: events, grouping, coalescing, bundle planning and outcomes.

Nothing here imports celery, redis or httpx (a test walks `sys.modules` to keep it so).
"""
