"""Figures of dataset rows: lesion outlines on grey images, single overlays and titled grids."""
