"""Evaluation: the Matbench runners (Roost and the trees) writing cells to :mod:`pretroost.results`."""
