"""Fault tests: processes killed, databases stopped; each prints what it tried and found."""
