"""Evaluation of k-MTR and baselines: metrics, cohort-level runs, plots."""
