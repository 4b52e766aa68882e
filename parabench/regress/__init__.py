"""Comparing and tracking performance: two sides, a verdict per benchmark, history."""
