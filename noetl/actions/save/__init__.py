"""Saves: the executor that writes their events, and one writer module per storage."""
