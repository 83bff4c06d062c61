"""SQLAlchemy's own pool test suite against sessionpool's QueuePool (issue 6, item 4).

harness.py fetches and runs the pinned suite; swap_plugin.py runs inside it. Standard library
only at import: the plugin is imported by the suite's interpreter before SQLAlchemy is.
"""
