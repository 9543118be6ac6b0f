"""Tasks say how a batch becomes a loss and which metrics to report; nothing else forks on them."""
