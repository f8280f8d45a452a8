"""Predictive uncertainty of trained nets: scores, methods, shifts, ensembles, the study, predict."""
