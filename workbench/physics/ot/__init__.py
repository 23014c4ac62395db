"""Optimal-transport physics: ground costs between supports, and the quality measures of plans."""
