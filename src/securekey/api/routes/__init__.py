"""Thin routes, one module per group of resources."""
