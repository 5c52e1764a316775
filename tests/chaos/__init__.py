"""
The chaos lifecycle (issue #30): N simulated days of the example lifecycle under a real Airflow and
real servers, with faults picked from a seed; then the same days run clean on a fresh system, and
everything the lifecycle produced is compared. ``python -m tests.chaos --help``; docs/reliability.md.
"""
