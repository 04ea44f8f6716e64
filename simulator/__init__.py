"""Simulated cardiac scanner: phantom, coils, sampling, ISMRMRD streams, datasets."""
