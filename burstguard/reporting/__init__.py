"""Benchmark reports: scenarios side by side as a text table, a Markdown table, JSON, a plot."""
