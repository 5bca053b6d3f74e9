"""Chip Monte Carlo: run many simulated chips, summarise the statistics, write reports."""
