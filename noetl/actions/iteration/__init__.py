"""The iterator's parts: the collection, one item's run, the summary and failure policy."""
