"""Regression tests from an adversarial review of the observability work (issue 8)."""
