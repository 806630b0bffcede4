"""Seeded scenarios and metrics for evaluating controllers in simulation."""
