"""neoleasepool benchmarks: ``make bench`` (or ``python -m benchmarks``)."""
